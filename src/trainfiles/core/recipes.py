"""The configuration trainers need beside a split export. Pure: text out.

- LLaMA-Factory's `dataset_info.json`: one entry per split file, with every column and tag
  spelled out, so the system prompt and the history are read (a minimal alpaca entry loses
  both). prompt-completion has no LLaMA-Factory formatting: no entry.
- Axolotl's `datasets:` snippet (0.19: `type: chat_template`; `type: sharegpt` is refused):
  messages rows as they are, sharegpt rows with `message_property_mappings: {role: from,
  content: value}` (else `KeyError: 'role'`). Fitted rows (`weight` on replies) add
  `message_field_training: weight`. alpaca and prompt-completion: no snippet (Axolotl's
  alpaca type reads neither system nor history).
"""

import orjson

from trainfiles.core.card import quoted

_SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}
_MESSAGES_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}
LLAMA_FACTORY = {
    "messages": {"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags": _MESSAGES_TAGS},
    "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations"}, "tags": _SHAREGPT_TAGS},
    "alpaca": {
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
        },
    },
}
_AXOLOTL_FIELDS = {
    "messages": ("messages", None),
    "sharegpt": ("conversations", "{role: from, content: value}"),
}


def dataset_info(name: str, fmt: str, files: dict[str, str]) -> bytes | None:
    """LLaMA-Factory's dataset_info.json: an entry `<name>-<split>` per file; None when the
    format has no LLaMA-Factory formatting."""
    entry = LLAMA_FACTORY.get(fmt)
    if entry is None:
        return None
    info = {f"{name}-{split}": {"file_name": path, **entry} for split, path in files.items()}
    return orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def axolotl(fmt: str, files: dict[str, str], weighted: bool) -> bytes | None:
    """Axolotl's `datasets:` (and `test_datasets:` for validation) with `path` set to the
    folder's files relative to it; None when the format has no chat_template reading."""
    if fmt not in _AXOLOTL_FIELDS:
        return None
    field, mappings = _AXOLOTL_FIELDS[fmt]
    lines = ["# Axolotl 0.19: paths are relative to this folder; prefix them with its location."]
    for key, split in (("datasets", "train"), ("test_datasets", "validation")):
        if split not in files:
            continue
        lines += [f"{key}:", f"  - path: {quoted(files[split])}", "    ds_type: json", "    type: chat_template"]
        lines += ["    split: train", f"    field_messages: {field}"]
        lines += [f"    message_property_mappings: {mappings}"] if mappings else []
        lines += ["    roles_to_train: [assistant]", "    train_on_eos: turn"]
        lines += ["    message_field_training: weight"] if weighted else []
    return ("\n".join(lines) + "\n").encode()
