"""`trainfiles serve`'s Starlette app: the report's pages live, plus the conversations table
and every change, each a POST through the same library calls as the command line. Files are
named by id, version and format, never by a path; the library's errors become a page with
the HTTP status of their kind, never a traceback."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trainfiles import Trainfiles, TrainingFile
from trainfiles.errors import InvalidInput, NotFound, TrainfilesError, UsageError
from trainfiles.usecases import exports
from trainfiles.web import pages
from trainfiles.web.links import Links
from trainfiles.web.rendering import render
from trainfiles.web.security import COOKIE, LOOPBACK_HOSTS, Guard, same_origin

STATUS = {
    "usage": 400,
    "invalid_input": 422,
    "not_found": 404,
    "conflict": 409,
    "storage_unavailable": 503,
    "permission_denied": 403,
}
MEDIA = {"json": "application/json", "card": "text/markdown; charset=utf-8"}
MOST_ITEMS = 1000  # offenders an error page lists (the message names the first ones)
CACHED_LENGTHS = 256


def create_app(tf: Trainfiles, *, read_only: bool = False, guard: Guard | None = None) -> Starlette:
    """The app over one library session. Without a remote `guard`, only requests naming a
    loopback host are answered (a page elsewhere cannot reach it by DNS rebinding)."""
    guard = guard or Guard(remote=False)
    lengths: dict[tuple[str, int], list[int]] = {}

    def page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        html = render(
            template,
            links=Links(),
            read_only=read_only,
            actions=not read_only,
            csrf=guard.csrf,
            user=tf.settings.user,
            **context,
        )
        return HTMLResponse(html, status_code=code)

    def reply_lengths(f: TrainingFile) -> list[int]:
        """A version's reply lengths, read once: its stored JSONL does not change."""
        key = (f.id, f.version)
        if key not in lengths:
            if len(lengths) >= CACHED_LENGTHS:
                lengths.clear()
            lengths[key] = f.reply_lengths()
        return lengths[key]

    def index(request: Request) -> Response:
        status = request.query_params.get("status", "all")
        return page(request, "index.html", **pages.index_page(tf, status=status))

    def file(request: Request) -> Response:
        context = pages.file_page(
            tf, request.path_params["file_id"], _number(request, "page", 1), lengths=reply_lengths
        )
        f = context["file"]
        return page(request, "file.html", page_href=lambda n: Links().file(f.id, n), **context)

    def conversation(request: Request) -> Response:
        found = next(tf.transcripts([request.path_params["conversation_id"]]))
        if "enrichment_status" not in found:
            raise NotFound(f"unknown conversation id: {found['conversation_id']}")
        return page(request, "conversation.html", **pages.transcript(found))

    def conversations(request: Request) -> Response:
        filters = pages.parse_filters(dict(request.query_params))
        context = pages.conversations_page(tf, filters, _number(request, "page", 1))
        return page(
            request, "conversations.html", page_href=lambda n: Links().conversations(**filters, page=n), **context
        )

    def download(request: Request) -> Response:
        fmt = request.query_params.get("format", "jsonl")
        rows = request.query_params.get("rows") or None
        if fmt not in pages.EXPORT_FORMATS or rows not in (None, *pages.ROW_MODES):
            raise UsageError(
                f"format is one of {', '.join(pages.EXPORT_FORMATS)}; rows one of {', '.join(pages.ROW_MODES)}"
            )
        f = tf.get(request.path_params["file_id"])
        version = _version(f, _number(request, "version", f.version))
        if fmt == "card" and version != f.version:
            raise UsageError(f"the card describes the latest version, {f.version}: leave version out")
        if rows and fmt not in pages.TRAINER_FORMATS:
            raise UsageError(f"rows apply to the trainer formats: {', '.join(pages.TRAINER_FORMATS)}")
        chunks = exports.output(tf.settings, f.id, fmt, rows, number=version)
        first = next(chunks, b"")  # a refusal (a row mode the format lacks) before any byte is sent
        extension = {"card": "md", "json": "json"}.get(fmt, "jsonl")
        name = f"{f.name}-v{version}-{fmt}.{extension}"
        return StreamingResponse(
            _then(first, chunks),
            media_type=MEDIA.get(fmt, "application/x-ndjson"),
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )

    async def changed(request: Request) -> FormData:
        """The form of a change, once it is known to be allowed and to come from our page."""
        if read_only:
            raise HTTPException(403, "this server is read-only (trainfiles serve --read-only): nothing was changed")
        host = request.headers.get("host")
        if not same_origin(request.headers.get("origin"), request.headers.get("referer"), request.url.scheme, host):
            raise HTTPException(403, "the request did not come from this server's pages: nothing was changed")
        form = await request.form()
        if not guard.csrf_ok(form.get("csrf")):
            raise HTTPException(403, "the form's token is missing or stale (reload the page): nothing was changed")
        return form

    async def create(request: Request) -> Response:
        form = await changed(request)
        ids = await run_in_threadpool(_chosen, tf, form)
        f = await run_in_threadpool(
            lambda: tf.create(
                _text(form, "name"),
                ids,
                description=_text(form, "description") or None,
                target_model=_text(form, "target_model") or None,
                skip_invalid=form.get("invalid") == "skip",
            )
        )
        message = f"Created {f.name}: version {f.version} with {f.conversation_count} conversations."
        return page(request, "result.html", title="Training file created", message=message, file=f, skipped=f.skipped)

    async def add(request: Request) -> Response:
        form = await changed(request)
        ids = await run_in_threadpool(_chosen, tf, form)
        f = await run_in_threadpool(
            lambda: tf.get(_text(form, "file")).add(ids, skip_invalid=form.get("invalid") == "skip")
        )
        message = f"Added to {f.name}: version {f.version} has {f.conversation_count} conversations."
        return page(request, "result.html", title="Conversations added", message=message, file=f, skipped=f.skipped)

    def change(action: str):
        """An endpoint that makes one change to the file named by id, then shows its page."""

        async def endpoint(request: Request) -> Response:
            form = await changed(request)
            file_id = request.path_params["file_id"]
            f = await run_in_threadpool(lambda: _CHANGES[action](tf.get(file_id), form))
            # A file named by its old name is at its id once renamed.
            return RedirectResponse(Links().file(f.id if action == "rename" else file_id), status_code=303)

        return endpoint

    async def library_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TrainfilesError)
        title = exc.kind.replace("_", " ").capitalize()
        return page(
            request,
            "error.html",
            STATUS.get(exc.kind, 500),
            title=title,
            message=str(exc),
            items=exc.items[:MOST_ITEMS],
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return page(
            request, "error.html", exc.status_code, title=f"Error {exc.status_code}", message=exc.detail, items=[]
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        message = f"internal error: {type(exc).__name__} (the server's log has the details)"
        return page(request, "error.html", 500, title="Internal error", message=message, items=[])

    routes = [
        Route("/", index),
        Route("/conversations", conversations),
        Route("/conversations/{conversation_id}", conversation),
        Route("/files", create, methods=["POST"]),
        Route("/files/add", add, methods=["POST"]),
        Route("/files/{file_id}", file),
        Route("/files/{file_id}/download", download),
        *(Route(f"/files/{{file_id}}/{action}", change(action), methods=["POST"]) for action in _CHANGES),
        Mount("/static", StaticFiles(packages=[("trainfiles.web", "static")]), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))] if guard.access is None else []
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={TrainfilesError: library_error, HTTPException: http_error, Exception: internal_error},
    )
    if guard.access is not None:
        app.add_middleware(_AccessToken, guard=guard)
    return app


class _AccessToken:
    """Every request shows the access token: the URL printed at start carries it once, and a
    cookie (HttpOnly, SameSite=Strict) from then on."""

    def __init__(self, app: Any, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and self.guard.access_ok(given):
            response: Response = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        elif self.guard.access_ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        else:
            response = HTMLResponse(
                "<!doctype html><title>Token needed</title><p>Open the URL <code>trainfiles serve</code> printed, "
                "with its token.</p>",
                status_code=401,
            )
        await response(scope, receive, send)


def _restore(f: TrainingFile, form: FormData) -> TrainingFile:
    try:
        version = int(_text(form, "version"))
    except ValueError:
        raise UsageError("version must be a whole number") from None
    return f.restore(_version(f, version))


def _version(f: TrainingFile, number: int) -> int:
    """A version number the file has had, or NotFound (before the catalog is asked: 0 would
    read as the latest, and a number past what SQLite holds would fail inside it)."""
    if not 1 <= number <= f.version:
        raise NotFound(f"training file {f.name!r} has no version {number} (versions 1 to {f.version})")
    return number


_CHANGES = {
    "archive": lambda f, form: f.archive(),
    "unarchive": lambda f, form: f.unarchive(),
    "rename": lambda f, form: f.rename(_text(form, "name")),
    "describe": lambda f, form: f.describe(_text(form, "description"), _text(form, "target_model")),
    "restore": _restore,
}


def _chosen(tf: Trainfiles, form: FormData) -> list[str]:
    """The conversations a create or add is for: those ticked, or every one matching the
    filters the form carries ("all that match")."""
    if form.get("all_matching"):
        ids = pages.matching_ids(tf, pages.parse_filters({k: v for k, v in form.items() if isinstance(v, str)}))
    else:
        ids = [v for v in form.getlist("id") if isinstance(v, str)]
    if not ids:
        raise InvalidInput("no conversations chosen: tick some, or choose all that match the filters")
    return ids


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _number(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None


def _then(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest
