"""`S3Storage`: S3 and S3-compatible servers through s3fs, one request wherever fsspec's
generic path would make several (listings after a key, streamed reads, server-side copies),
conditional PUTs for put-if-absent, multipart uploads that are completed or aborted."""

import contextlib
import errno
from collections.abc import Callable, Iterator
from typing import Any

from trainfiles.errors import NotFound, TrainfilesError
from trainfiles.storage.generic import Storage, unscannable
from trainfiles.storage.urls import CHUNK, UPLOAD_PART, _too_large, failure, resolve

LIST_PAGE = 1000  # keys a listing request returns (S3's most)


class S3Storage(Storage):
    """An S3 bucket (`s3://`, `s3a://`)."""

    def chunks(self, url: str) -> Iterator[bytes]:
        """One GET streamed, not a HEAD and a ranged GET per chunk."""
        from fsspec.asyn import sync

        fs, path = resolve(url)
        bucket, key, _ = fs.split_path(path)
        try:
            body = sync(fs.loop, fs._call_s3, "get_object", Bucket=bucket, Key=key)["Body"]
            try:
                while chunk := sync(fs.loop, body.read, CHUNK):
                    yield chunk
            finally:
                body.close()
        except Exception as e:
            raise failure(url, e) from e

    def names_after(self, folder: str, after: str | None) -> list[str]:
        """One listing request (`StartAfter`) however long the folder's history."""
        fs, path = resolve(folder)
        bucket, prefix, _ = fs.split_path(path.rstrip("/") + "/")
        params = {"Bucket": bucket, "Prefix": prefix}
        if after is not None:
            params["StartAfter"] = prefix + after
        names: list[str] = []
        try:
            while True:
                page = fs.call_s3("list_objects_v2", **params)
                names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
                if not page.get("IsTruncated"):
                    return [n for n in names if "/" not in n]
                params["ContinuationToken"] = page["NextContinuationToken"]
        except FileNotFoundError:
            return []
        except Exception as e:
            raise failure(folder, e) from e

    def find_json(self, url: str, limit: Callable[[], int]) -> Iterator[tuple[str, str | None]]:
        """The listing a page (1,000 keys) at a time, each file yielded as its page comes,
        so memory stays flat whatever the number of files. S3 lists keys in UTF-8 byte
        order, which is the order of the paths as strings: the same order as a sort."""
        fs, path = resolve(url)
        bucket, key, _ = fs.split_path(path)
        prefix, found = (key.rstrip("/") + "/" if key else ""), 0
        params = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE}
        try:
            while True:
                page = fs.call_s3("list_objects_v2", **params)
                for item in page.get("Contents", []):
                    found += 1
                    if item["Key"].endswith(".json"):
                        yield fs.unstrip_protocol(f"{bucket}/{item['Key']}"), _too_large(item.get("Size") or 0, limit)
                if not page.get("IsTruncated"):
                    break
                params["ContinuationToken"] = page["NextContinuationToken"]
            if not found and key:  # not a folder: the object itself, whatever its name
                info = fs.info(path)
                yield fs.unstrip_protocol(path), unscannable(info, limit)
        except TrainfilesError:
            raise
        except FileNotFoundError:
            raise NotFound(f"nothing to scan at {url}") from None
        except Exception as e:
            raise failure(url, e) from e

    def unfinished_uploads(self, folder: str, started_before: float, abort: bool) -> list[str]:
        """The keys of multipart uploads under `folder` started before `started_before`,
        aborted when `abort`: what a process killed while writing a large object left
        (invisible, but billed until aborted). A store that does not let us list or abort
        them has none we can act on; one that cannot be reached is reported as usual."""
        fs, path = resolve(folder)
        bucket, prefix, _ = fs.split_path(path.rstrip("/") + "/")
        found = []
        try:
            listed = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
            for upload in listed.get("Uploads", []):
                if upload["Initiated"].timestamp() > started_before:
                    continue
                found.append(upload["Key"])
                if abort:
                    fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        except PermissionError:
            pass
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise failure(folder, e) from e
        except Exception as e:
            raise failure(folder, e) from e
        return found

    def writable(self, store: str) -> None:
        """S3 commits: a PUT with `If-None-Match: *` fails on an existing key."""

    def target(self, url: str, create_folder: bool, into_special: bool) -> "_S3Object":
        return _S3Object(url)

    def publish_copy(self, src: str, dst: str) -> None:
        """One CopyObject request (fsspec's `copy` lists and HEADs first)."""
        fs, path = resolve(src)
        bucket, key, _ = fs.split_path(path)
        dst_bucket, dst_key, _ = fs.split_path(resolve(dst)[1])
        try:
            fs.call_s3("copy_object", Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": bucket, "Key": key})
        except Exception as e:
            raise failure(dst, e) from e


class _S3Object:
    """An S3 object written whole or not at all, with memory for one part whatever its size.

    Up to UPLOAD_PART bytes are held and published with one PUT. A larger object goes up as
    it is written through an fsspec file opened with `autocommit=False`: parts of a
    multipart upload, which `commit()` completes and `discard()` aborts (fsspec's documented
    deferred commit), so nothing is visible until the end."""

    def __init__(self, url: str):
        self.url = url
        self.held: list[bytes] = []
        self.size = 0
        self.file: Any = None

    def write(self, chunk: bytes) -> None:
        try:
            if self.file is None:
                self.held.append(chunk)
                self.size += len(chunk)
                if self.size > UPLOAD_PART:
                    self._start_upload()
                return
            view = memoryview(chunk)
            for start in range(0, len(view), CHUNK):  # in pieces, so parts stay UPLOAD_PART long
                self.file.write(view[start : start + CHUNK])
        except Exception as e:
            raise failure(self.url, e) from e

    def _start_upload(self) -> None:
        fs, path = resolve(self.url)
        self.file = fs.open(path, "wb", block_size=UPLOAD_PART, autocommit=False)
        held, self.held = self.held, []
        for chunk in held:
            self.write(chunk)

    def commit(self) -> None:
        try:
            if self.file is None:
                fs, path = resolve(self.url)
                fs.pipe_file(path, b"".join(self.held))
                return
            self.file.close()  # uploads the last part; nothing is published yet
            self.file.commit()
        except Exception as e:
            self.discard()
            raise failure(self.url, e) from e

    def discard(self) -> None:
        self.held = []
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
            with contextlib.suppress(Exception):
                self.file.discard()
