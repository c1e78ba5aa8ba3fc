"""Proof that trainfiles' trainer exports load and train: `make check-trainers`.

    python tools/check_trainers.py EXPORT_DIR

EXPORT_DIR holds one export per format and row mode, named `<format>-<rows>.jsonl`
(messages-conversation.jsonl, prompt-completion-pair.jsonl, sharegpt-pair.jsonl, ...), and
optionally folders holding a split export with its dataset card (README.md).

Every file must load with `datasets.load_dataset("json", ...)` with no null value, no row
lost and the same columns on every line. Then, offline in a temporary folder, a tokenizer
is trained on the data and a tiny randomly initialised Llama takes 2 TRL SFTTrainer steps
on each messages and prompt-completion file (assistant-only / completion-only loss), plus
one PEFT LoRA run: the loss must be finite, the weights must change, no row may be dropped
and exactly the assistant replies may carry loss. A card folder must load through its
README's `configs` with one split per file.

Needs the `trainers` extra (torch, transformers, trl, peft, datasets, tokenizers,
accelerate); no network. Exits 1 with the failed check on stderr.
"""

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"  # before the imports: these libraries read them once
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

FORMATS = ("prompt-completion", "messages", "sharegpt", "alpaca")  # longest prefix first
TRAINED_BY_TRL = ("messages", "prompt-completion")  # TRL keeps sharegpt's human/gpt roles, so no assistant mask
END = "<|end|>"
SPECIAL = ["<unk>", "<pad>", END, "<|system|>", "<|user|>", "<|assistant|>"]
# Each turn: a role header, the content, END. The assistant's content and END sit inside
# {% generation %} so assistant_only_loss trains the replies and the stop token, nothing else.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{%- else -%}{{ message['content'] + '<|end|>' }}{%- endif -%}"
    "{{ '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


class CheckFailed(Exception):
    """One check did not hold."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def main(folder: Path) -> None:
    started = time.monotonic()
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    exports = {path: format_of(path) for path in sorted(folder.glob("*.jsonl"))}
    for fmt in TRAINED_BY_TRL:
        require(fmt in exports.values(), f"{folder}: no {fmt}-*.jsonl export")
    loaded = {path: load(path, fmt) for path, fmt in exports.items()}
    for card in sorted(p.parent for p in folder.glob("*/README.md")):
        load_card_folder(card)
    with tempfile.TemporaryDirectory(prefix="check-trainers-") as tmp:
        tokenizer = make_tokenizer(Path(tmp), [loaded[p] for p, fmt in exports.items() if fmt in TRAINED_BY_TRL])
        model_dir = make_model(Path(tmp), tokenizer)
        for path, fmt in exports.items():
            if fmt in TRAINED_BY_TRL:
                train(path.name, loaded[path], tokenizer, model_dir, Path(tmp) / path.stem, lora=False)
        first = next(p for p, fmt in exports.items() if fmt == "messages")
        train(f"{first.name} (LoRA)", loaded[first], tokenizer, model_dir, Path(tmp) / "lora", lora=True)
    print(f"check-trainers: all checks passed in {time.monotonic() - started:.0f}s")


def format_of(path: Path) -> str:
    fmt = next((f for f in FORMATS if path.stem.startswith(f + "-")), None)
    require(fmt is not None, f"{path.name}: name it <format>-<rows>.jsonl with a format of {', '.join(FORMATS)}")
    return fmt


def load(path: Path, fmt: str) -> datasets.Dataset:
    """The export through `datasets`: every line a row, every row the same columns, no null."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    require(len(dataset) == len(lines) > 0, f"{path.name}: {len(lines)} lines but {len(dataset)} rows loaded")
    columns = set(dataset.column_names)
    for number, (line, row) in enumerate(zip(lines, dataset), 1):
        require(set(line) == columns, f"{path.name} line {number}: columns {sorted(line)}, expected {sorted(columns)}")
        # Metadata values may be unknown (null); anything else null means a lost field.
        nulls = [key for key, value in row.items() if key != "metadata" and has_null(value)]
        require(not nulls, f"{path.name} line {number}: null in {nulls}")
    print(f"{path.name}: {len(dataset)} rows, columns {dataset.column_names}")
    return dataset


def has_null(value) -> bool:
    if isinstance(value, dict):
        return any(has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(has_null(v) for v in value)
    return value is None


def load_card_folder(folder: Path) -> None:
    """A split export loads by its folder alone, through the card's `configs`."""
    splits = datasets.load_dataset(str(folder))
    files = {
        path.stem: sum(1 for line in path.open(encoding="utf-8") if line.strip()) for path in folder.glob("*.jsonl")
    }
    require({name: len(split) for name, split in splits.items()} == files, f"{folder}: card splits {splits} != {files}")
    print(f"{folder.name}/README.md: splits {files}")


def messages_of(row: dict) -> list[dict]:
    return row["messages"] if "messages" in row else row["prompt"] + row["completion"]


def make_tokenizer(tmp: Path, loaded: list[datasets.Dataset]) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the exported text, wrapped for transformers, saved and reloaded."""
    texts = (m["content"] for dataset in loaded for row in dataset for m in messages_of(row))
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", pad_token="<pad>", eos_token=END)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(tmp / "tokenizer")
    return PreTrainedTokenizerFast.from_pretrained(tmp / "tokenizer")


def make_model(tmp: Path, tokenizer: PreTrainedTokenizerFast) -> Path:
    """A tiny randomly initialised Llama, saved so every run starts from the same weights."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(tmp / "model")
    return tmp / "model"


def train(name: str, dataset, tokenizer, model_dir: Path, output: Path, *, lora: bool) -> None:
    """2 SFT steps; the checks that the data went in whole and only the replies were trained."""
    model = LlamaForCausalLM.from_pretrained(model_dir)
    prompt_completion = "prompt" in dataset.column_names
    config = SFTConfig(
        output_dir=str(output),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        max_length=None,  # no truncation: every row must reach the model whole
        assistant_only_loss=True,
        completion_only_loss=True if prompt_completion else None,
        dataloader_num_workers=0,
        seed=0,
    )
    peft_config = (
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM") if lora else None
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    trainer.remove_callback(transformers.PrinterCallback)  # the summary line below says it all
    prepared = trainer.train_dataset
    require(len(prepared) == len(dataset), f"{name}: {len(dataset)} rows, {len(prepared)} after preparation")
    for number, (row, example) in enumerate(zip(dataset, prepared), 1):
        trained = tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != -100])
        replies = [m for m in (row["completion"] if prompt_completion else row["messages"]) if m["role"] == "assistant"]
        expected = "".join(m["content"] + END for m in replies)
        require(trained == expected, f"{name} row {number}: the loss covers {trained[:80]!r}..., not just the replies")
    before = {key: value.detach().clone() for key, value in trainer.model.named_parameters()}
    result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    require(len(losses) == 2 and all(math.isfinite(loss) for loss in losses), f"{name}: losses {losses}")
    changed = {key for key, value in trainer.model.named_parameters() if not torch.equal(value.detach(), before[key])}
    require(bool(changed), f"{name}: no weight changed")
    if lora:
        require(all("lora_" in key for key in changed), f"{name}: LoRA changed base weights {sorted(changed)[:3]}")
    print(
        f"{name}: {len(dataset)} rows, losses {[round(x, 3) for x in losses]}, {len(changed)} tensors changed, "
        f"{result.metrics['train_runtime']:.1f}s"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit(__doc__.split("\n\n")[1])
    try:
        main(Path(sys.argv[1]))
    except CheckFailed as failure:
        sys.exit(f"check-trainers: FAILED: {failure}")
