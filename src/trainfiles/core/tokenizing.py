"""Token counts of trainer rows as a trainer sees them: the chat template applied, then tokenized.

A tokenizer is a `tokenizer.json`, a folder holding one, or a model id (`ORG/NAME`) found in
the local Hugging Face cache (never downloaded). Its chat template is the folder's
`chat_template.jinja` or `tokenizer_config.json`'s `chat_template`; without one, rows are
rendered with PLAIN_TEMPLATE. Without a tokenizer, tokens are estimated as one per 4
characters of the rendered text.

The tokens that carry loss are those a trainer masks in: the `{% generation %}` blocks of the
template (what TRL's `assistant_only_loss` trains), or, for a template without them, each
trained reply's content where it appears in the rendered text.
"""

import os
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, NamedTuple

import orjson

from trainfiles.errors import InvalidInput, NotFound

ESTIMATE = "estimate: ceil(chars/4)"
# The documented plain template: a role header, the content and <|end|> per message; the
# reply and its <|end|> are the generation (loss) span.
PLAIN_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{%- else -%}{{ message['content'] + '<|end|>' }}{%- endif -%}"
    "{{ '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)
_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use marks around generation blocks while rendering


class Encoded(NamedTuple):
    """One row: its length in tokens and, per trained message index, its loss token positions."""

    length: int
    loss: dict[int, range]


class Tokens:
    """Renders rows with a chat template and counts their tokens; `name` says which."""

    def __init__(self, spec: str | None):
        self.name = spec or ESTIMATE
        if spec is None:
            self._encode: Callable[[str], list[tuple[int, int]]] = _estimate
            self._render = _plain
            return
        path = resolve(spec)
        self._encode = _load(path)
        template, specials = _chat_template(path.parent)
        self._render = _plain if template is None else _jinja(template, specials)

    def encode(self, messages: Sequence[dict], trained: Sequence[int]) -> Encoded:
        """Tokens of `messages` with the template applied; loss positions of the `trained` ones."""
        text, spans = self._render(messages)
        offsets = self._encode(text)
        starts = [start for start, _ in offsets]
        loss = {}
        for index in trained:
            begin, end = spans.get(index, (0, 0))
            first = _first_at_or_after(starts, begin)
            loss[index] = range(first, _first_at_or_after(starts, end, first))
        return Encoded(len(offsets), loss)

    def length(self, messages: Sequence[dict]) -> int:
        return len(self._encode(self._render(messages)[0]))


def resolve(spec: str) -> Path:
    """The tokenizer.json a spec names: a file, a folder holding one, or a cached model id."""
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return path
    if spec.count("/") == 1 and not path.suffix and not spec.startswith((".", "/")):
        cached = _cached(spec)
        if cached is not None:
            return cached
        raise NotFound(
            f"tokenizer not found: {spec} is neither a file nor a model in the Hugging Face cache ({_hub_cache()})"
        )
    raise NotFound(f"tokenizer not found: {path}")


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def _cached(model_id: str) -> Path | None:
    """The model's tokenizer.json in the local Hugging Face cache (the revision `refs/main`
    names), as huggingface_hub finds it; never a download."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # it comes with the tokenizers package
        return None
    found = try_to_load_from_cache(model_id, "tokenizer.json", cache_dir=str(_hub_cache()))
    return Path(found) if isinstance(found, str) else None


def _load(path: Path) -> Callable[[str], list[tuple[int, int]]]:
    try:
        from tokenizers import Tokenizer  # optional: only real token counts need it
    except ImportError:
        raise InvalidInput(
            "counting with a tokenizer needs the tokenizers package: pip install 'trainfiles[trainers]'"
        ) from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for an unreadable file
        raise InvalidInput(f"not a tokenizer file: {path}: {e}") from None
    return lambda text: tokenizer.encode(text, add_special_tokens=False).offsets


def _estimate(text: str) -> list[tuple[int, int]]:
    return [(start, min(start + 4, len(text))) for start in range(0, len(text), 4)]


def _chat_template(folder: Path) -> tuple[str | None, dict]:
    """The folder's chat template (None: none) and the special tokens templates refer to."""
    config_path = folder / "tokenizer_config.json"
    config = orjson.loads(config_path.read_bytes()) if config_path.is_file() else {}
    specials = {key: _token_text(config.get(key)) for key in ("bos_token", "eos_token", "pad_token", "unk_token")}
    jinja = folder / "chat_template.jinja"
    template = jinja.read_text(encoding="utf-8") if jinja.is_file() else config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template, specials


def _token_text(value: object) -> str:
    return value.get("content", "") if isinstance(value, dict) else value or ""


def _plain(messages: Sequence[dict]) -> tuple[str, dict[int, tuple[int, int]]]:
    """PLAIN_TEMPLATE, rendered directly (tools/check_trainers.py proves it renders the same)."""
    parts, spans, at = [], {}, 0
    for index, message in enumerate(messages):
        header, body = f"<|{message['role']}|>\n", _text(message["content"]) + "<|end|>"
        if message["role"] == "assistant":
            spans[index] = (at + len(header), at + len(header) + len(body))
        parts += [header, body, "\n"]
        at += len(header) + len(body) + 1
    return "".join(parts), spans


def _jinja(template: str, specials: dict) -> Callable[[Sequence[dict]], tuple[str, dict[int, tuple[int, int]]]]:
    try:
        from jinja2 import TemplateError, nodes
        from jinja2.ext import Extension
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise InvalidInput(
            "a tokenizer's chat template needs the jinja2 package: pip install 'trainfiles[trainers]'"
        ) from None

    class Generation(Extension):
        """`{% generation %}...{% endgeneration %}` (transformers' extension): marks the span."""

        tags: ClassVar[set[str]] = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(lineno)

        def _mark(self, caller):
            return _OPEN + caller() + _CLOSE

    def raise_exception(message):
        raise InvalidInput(f"the tokenizer's chat template refused a row: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation])
    env.globals["raise_exception"] = raise_exception
    try:
        compiled = env.from_string(template)
    except TemplateError as e:
        raise InvalidInput(f"the tokenizer's chat template does not parse: {e}") from None
    has_generation = _OPEN in _mark_test(compiled, specials)

    def render(messages: Sequence[dict]) -> tuple[str, dict[int, tuple[int, int]]]:
        plain = [{"role": m["role"], "content": _text(m["content"])} for m in messages]
        try:
            marked = compiled.render(messages=plain, add_generation_prompt=False, **specials)
        except TemplateError as e:
            raise InvalidInput(f"the tokenizer's chat template failed on a row: {e}") from None
        text, blocks = _unmark(marked)
        replies = [i for i, m in enumerate(plain) if m["role"] == "assistant"]
        if has_generation:
            return text, dict(zip(replies, blocks))
        spans, cursor = {}, 0  # no generation blocks: each reply's content where it is rendered
        for index in replies:
            begin = text.find(plain[index]["content"], cursor)
            if begin >= 0:
                spans[index] = (begin, begin + len(plain[index]["content"]))
                cursor = spans[index][1]
        return text, spans

    return render


def _mark_test(compiled, specials: dict) -> str:
    """A two-message rendering, to see whether the template has generation blocks."""
    from jinja2 import TemplateError

    probe = [{"role": "user", "content": "?"}, {"role": "assistant", "content": "!"}]
    try:
        return compiled.render(messages=probe, add_generation_prompt=False, **specials)
    except (InvalidInput, TemplateError):
        return ""


def _unmark(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without generation marks, and the spans they enclosed."""
    text, blocks, start = [], [], 0
    length = 0
    for char in marked:
        if char == _OPEN:
            start = length
        elif char == _CLOSE:
            blocks.append((start, length))
        else:
            text.append(char)
            length += 1
    return "".join(text), blocks


def _first_at_or_after(starts: list[int], position: int, low: int = 0) -> int:
    return bisect_left(starts, position, low)


def _text(content: object) -> str:
    return content if isinstance(content, str) else ""
