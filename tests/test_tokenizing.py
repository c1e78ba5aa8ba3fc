"""Rows as a trainer tokenizes them: chat templates, loss spans, tokenizers from the local cache."""

import orjson
import pytest

from trainfiles.core.tokenizing import PLAIN_TEMPLATE, Tokens, _jinja, _plain, resolve
from trainfiles.errors import NotFound

tokenizers = pytest.importorskip("tokenizers")

ROWS = [
    [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello, friend"},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yes"},
        {"role": "user", "content": "More?"},
        {"role": "assistant", "content": "No."},
    ],
]


def whitespace_tokenizer(folder, **config):
    """Words and runs of punctuation, one token each; `config` goes to tokenizer_config.json."""
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    if config:
        (folder / "tokenizer_config.json").write_bytes(orjson.dumps(config))
    return folder


@pytest.mark.parametrize("messages", ROWS)
def test_the_plain_template_renders_as_its_jinja_text(messages):
    assert _plain(messages) == _jinja(PLAIN_TEMPLATE, {})(messages)


def test_a_tokenizers_own_template_with_generation_blocks(tmp_path):
    template = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] "
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }} {{ eos_token }}{% endgeneration %}"
        "{% else %}{{ m['content'] }}{% endif %}\n{% endfor %}"
    )
    tokens = Tokens(
        str(whitespace_tokenizer(tmp_path, chat_template=template, bos_token="<s>", eos_token={"content": "</s>"}))
    )
    # "<s>[system] Be kind.[user] Hi there[assistant] Hello, friend </s>" (trim_blocks eats the
    # newline after a block, as in transformers): < s >[ system ] Be kind .[ user ] Hi there [
    # assistant ] | Hello , friend </ s >
    encoded = tokens.encode(ROWS[0], [2])
    assert encoded.length == 21 and encoded.loss == {2: range(15, 21)}


def test_a_template_without_generation_blocks_trains_the_reply_text(tmp_path):
    template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    tokens = Tokens(str(whitespace_tokenizer(tmp_path, chat_template=template)))
    # < user > Hi < assistant > Yes < user > More ? < assistant > No .
    assert tokens.encode(ROWS[1], [1, 3]) == (18, {1: range(7, 8), 3: range(16, 18)})


def test_a_model_id_is_found_in_the_local_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    model = tmp_path / "hf" / "hub" / "models--acme--tiny-chat"
    whitespace_tokenizer(model / "snapshots" / "1111")
    whitespace_tokenizer(model / "snapshots" / "2222")
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text("2222")  # as huggingface_hub writes it: no newline
    assert resolve("acme/tiny-chat") == model / "snapshots" / "2222" / "tokenizer.json"
    with pytest.raises(NotFound, match=r"acme/other is neither a file nor a model in the Hugging Face cache"):
        resolve("acme/other")


def test_a_broken_template_is_invalid_input(tmp_path):
    from trainfiles.errors import InvalidInput

    with pytest.raises(InvalidInput, match="does not parse"):
        Tokens(str(whitespace_tokenizer(tmp_path / "a", chat_template="{% for m in messages %}")))
    tokens = Tokens(str(whitespace_tokenizer(tmp_path / "b", chat_template="{{ raise_exception('no system role') }}")))
    with pytest.raises(InvalidInput, match="the tokenizer's chat template refused a row: no system role"):
        tokens.length(ROWS[0])
