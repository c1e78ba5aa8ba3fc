"""Proof that trainfiles' trainer exports train exactly the source conversations' replies:
`make check-trainers`.

    python tools/check_trainers.py tokenizer OUT_DIR
    python tools/check_trainers.py verify CASE_DIR TOKENIZER_DIR [--mutations]
    python tools/check_trainers.py loads SPLIT_DIR CACHE_DIR

`loads` loads a split export with `datasets` (through its card, and as a folder of JSON
files) with the cache CACHE_DIR, and fails unless it gets exactly the rows of its files: run
after each export of a folder, with one cache, it proves a re-export never loads stale data.

`tokenizer` saves Mistral NeMo's tokenizer (tekken, 131,072 tokens, the data file
mistral-common ships), converted by transformers, with trainfiles' plain chat template (the
`{% generation %}` blocks TRL's assistant-only loss needs) and its role headers and `<|end|>`
added as special tokens, so `trainfiles export --max-tokens N --tokenizer OUT_DIR` and `check`
count what the trainers see.

`verify` reads CASE_DIR: `show.json` (`trainfiles show FILE --json`: the conversations in
order), `../conversations.json` (`trainfiles conversations list --json`: their enriched
files), `exports/<format>-<rows>[-fitted].jsonl` (a fitted export's stderr, the replies it
left out and those whose user turn it trimmed, in the `.skipped` file beside it),
`exports/*.check.json` (`trainfiles check FILE --max-tokens 1024 --json`) and split folders
with their README.md. For every
export, each trainer that reads its format turns it into what it trains on, with its own code:

- TRL (SFTTrainer's dataset preparation, assistant_only_loss / completion_only_loss):
  messages and prompt-completion rows; TRL ignores per-message `weight`, so fitted messages
  rows are not given to it (README: with TRL, fit prompt-completion rows);
- Axolotl 0.19 (its chat_template prompt strategy, as the recipe configures it, with
  `message_field_training: weight`): messages and sharegpt rows;
- LLaMA-Factory 0.9.5 (its dataset converters, with the recipe's dataset_info.json entry, and
  its supervised rule: every assistant turn trained, only the last with `mask_history` for
  fitted rows): sharegpt and alpaca rows.

Then, row by row: the tokens that carry loss (labels != -100), decoded, must be whole replies
of one source conversation in order, and the whole input must be the plain template applied
to that conversation's system prompt and exchanges, ending at the last reply trained. In a
fitted export a row may instead hold one exchange whose user turn is the longest tail of the
source's, cut at a whitespace boundary, that fits in 1,024 tokens, when that exchange with
the system prompt is over them whole (exactly the replies the export lists as trimmed). Over
all rows, the replies trained must be the sources' replies: each exactly once, in order
(pair rows that train their history: each reply's history again), except replies a fitted
export left out, each of which must be too long even with only the last word of its user
turn. `check`'s loss under TRL's truncation at 1,024 tokens and Axolotl's dropping of longer
rows must be what TRL and Axolotl do. Then every view trains 2 steps on a tiny randomly initialised Llama (finite
loss, weights changed), plus one PEFT LoRA run.

`--mutations` instead feeds the checks mutated exports (a duplicated user turn, a dropped
exchange, a swapped system prompt, a deleted row, completions shifted by one; in a fitted
export, a trimmed user turn cut mid-word or a word too far, and a user turn trimmed in a row
that fits whole) and fails unless each one is caught. The two on a trimmed user turn apply
where the export trimmed one (the reference conversations, not the fixtures).

Needs the `trainers` extra, plus Axolotl and LLaMA-Factory installed without their pinned
dependencies (see the Makefile); no network. Exits 1 with the failed check on stderr.
"""

import copy
import json
import math
import os
import re
import sys
import tempfile
import time
import types
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"  # before the imports: these libraries read them once
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import mistral_common  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from trainfiles.core.tokenizing import PLAIN_TEMPLATE  # noqa: E402

# LLaMA-Factory's data package imports torchaudio for audio inputs only; no torchaudio is
# built for torch 2.13, so an empty module stands in for it (no audio is read here).
sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
from axolotl.prompt_strategies.chat_template import StrategyLoader  # noqa: E402
from axolotl.utils.dict import DictDefault  # noqa: E402
from llamafactory.data.converter import get_dataset_converter  # noqa: E402
from llamafactory.data.parser import DatasetAttr  # noqa: E402

FORMATS = ("prompt-completion", "messages", "sharegpt", "alpaca")  # longest prefix first
END = "<|end|>"
HEADERS = ["<|system|>", "<|user|>", "<|assistant|>"]
TEKKEN = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"  # Mistral NeMo's
MAX_LENGTH = 1024  # TRL's default max_length; Axolotl's sequence_len in the comparison
SPEAKERS = {"human": "user", "gpt": "assistant", "system": "system"}


class CheckFailed(Exception):
    """One check did not hold."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# The tokenizer and the model


def make_tokenizer(out: Path) -> None:
    """Mistral NeMo's tokenizer with the plain chat template, saved. Its role headers and END
    become special tokens, as a model's chat markers are: as plain text, END would merge with
    a reply's last characters (".<"), and a loss run would not be the reply and END alone."""
    tokenizer = convert_tekken_tokenizer(str(TEKKEN), chat_template=PLAIN_TEMPLATE)
    tokenizer.add_special_tokens({"eos_token": END, "additional_special_tokens": HEADERS})
    tokenizer.save_pretrained(out)
    print(f"tokenizer: {TEKKEN.name}, {len(tokenizer)} tokens with the chat markers, in {out}")


def make_model(tmp: Path, tokenizer) -> Path:
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


# The sources


class Sources:
    """The training file's conversations, read from their enriched files (not from trainfiles)."""

    def __init__(self, case: Path):
        self.order = json.loads((case / "show.json").read_text(encoding="utf-8"))["conversation_ids"]
        registered = json.loads((case.parent / "conversations.json").read_text(encoding="utf-8"))
        paths = {c["conversation_id"]: c["enriched_file_path"] for c in registered}
        self.system, self.exchanges, self.pair_ids = {}, {}, {}
        for cid in self.order:
            doc = json.loads(Path(paths[cid]).read_text(encoding="utf-8"))
            pairs = [p for p in doc["training_pairs"] if p.get("target_response") is not None]
            self.system[cid] = pairs[0]["system_prompt"]
            self.exchanges[cid] = [(p["current_user_input"], p["target_response"]) for p in pairs]
            self.pair_ids[cid] = [f"{p['id']}_{cid[:8]}" for p in pairs]  # the v4 JSONL's pair ids
        self.where: dict[str, list] = {}  # reply text -> every (conversation, index) with it
        for cid in self.order:
            for index, (_, reply) in enumerate(self.exchanges[cid]):
                self.where.setdefault(reply, []).append((cid, index))

    def replies(self) -> list[tuple[str, int]]:
        return [(cid, index) for cid in self.order for index in range(len(self.exchanges[cid]))]

    def window(self, cid: str, start: int, end: int, first_user: str | None = None) -> list[dict]:
        """The system prompt and exchanges `start` to `end`; `first_user` replaces the first user turn."""
        messages = [{"role": "system", "content": self.system[cid]}]
        for index, (user, reply) in enumerate(self.exchanges[cid][start : end + 1]):
            user = first_user if index == 0 and first_user is not None else user
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        return messages

    def length(self, tokenizer, cid: str, index: int, user: str | None = None) -> int:
        """Tokens of exchange `index` alone with the system prompt (its user turn `user`)."""
        window = self.window(cid, index, index, user)
        return len(tokenizer.apply_chat_template(window, tokenize=True, return_dict=True)["input_ids"])


# What each trainer trains on: per row, (the whole input as text, the replies trained)


def trl_view(dataset, tokenizer, model_dir: Path, tmp: Path, max_length: int | None):
    """TRL's own preparation; returns the trainer too (to train) and the per-row view."""
    trainer = sft_trainer(dataset, tokenizer, model_dir, tmp, max_length=max_length, lora=False)
    return trainer, [token_view(tokenizer, ex["input_ids"], ex["labels"]) for ex in trainer.train_dataset]


def axolotl_view(rows: list[dict], fmt: str, tokenizer, sequence_len: int):
    """Axolotl 0.19's chat_template strategy, configured as trainfiles' axolotl.yaml does."""
    cfg = DictDefault({"sequence_len": sequence_len, "train_on_inputs": False, "chat_template": "tokenizer_default"})
    ds_cfg = {
        "type": "chat_template",
        "chat_template": "tokenizer_default",
        "field_messages": "conversations" if fmt == "sharegpt" else "messages",
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
        "message_field_training": "weight",
    }
    if fmt == "sharegpt":
        ds_cfg["message_property_mappings"] = {"role": "from", "content": "value"}
    strategy = StrategyLoader()(tokenizer, cfg, DictDefault(ds_cfg))
    out = []
    for row in rows:
        example = strategy.tokenize_prompt(row)
        out.append((example["input_ids"], example["labels"]))
    return out


def llama_factory_view(rows: list[dict], fmt: str, case: Path, fitted: bool):
    """LLaMA-Factory's converter with the recipe's dataset_info.json entry; its supervised rule
    trains every assistant turn, or the last only with mask_history (fitted rows)."""
    info = json.loads((case / "exports" / f"{fmt}-split" / "dataset_info.json").read_text(encoding="utf-8"))
    entry = next(iter(info.values()))
    attr = DatasetAttr("file", dataset_name=entry["file_name"], formatting=entry["formatting"])
    attr.join(entry)
    converter = get_dataset_converter(entry["formatting"], attr, types.SimpleNamespace(media_dir="."))
    out = []
    for row in rows:
        converted = converter(row)
        messages = [{"role": "system", "content": converted["_system"]}] if converted["_system"] else []
        messages += converted["_prompt"] + converted["_response"]
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        out.append((render(messages), replies[-1:] if fitted else replies))
    return out


def token_view(tokenizer, input_ids, labels) -> tuple[str, list[str]]:
    """The decoded input, and each run of loss tokens decoded, its END removed."""
    runs, current = [], []
    for token, label in zip(input_ids, labels):
        if label != -100:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    replies = []
    for run in runs:
        text = tokenizer.decode(run)
        require(text.endswith(END), f"a loss run does not end with {END}: ...{text[-60:]!r}")
        replies.append(text[: -len(END)])
    return tokenizer.decode(input_ids), replies


def render(messages: list[dict]) -> str:
    return "".join(f"<|{m['role']}|>\n{m['content']}{END}\n" for m in messages)


# The comparison with the sources


def compare(name: str, view, sources: Sources, expected: list[tuple[str, int]], trimmable: dict | None = None) -> set:
    """Every row: whole replies of one conversation, the input that conversation's window.
    All rows: the replies trained are `expected`, in order. `trimmable` (fitted exports:
    (conversation, index) -> a function telling whether a row of it with a given user turn
    fits) lets a row hold one exchange with its user turn trimmed. Returns the replies trained
    by such rows."""
    trained, trimmed = [], set()
    for number, (text, replies) in enumerate(view, 1):
        require(replies, f"{name} row {number}: no reply carries loss")
        require(replies[0] in sources.where, f"{name} row {number}: trains {replies[0][:60]!r}..., no source reply")
        runs = (_run(sources, c, i, replies, text, trimmable or {}) for c, i in sources.where[replies[0]])
        run = next((r for r in runs if r), None)
        require(
            run is not None,
            f"{name} row {number}: its input is no source conversation's system prompt and exchanges ending at "
            f"the replies it trains (a user turn, an exchange, a reply or the system prompt differs)",
        )
        trained += run[0]
        trimmed |= set(run[0]) if run[1] else set()
    if trained != expected:
        lost = [x for x in expected if x not in trained]
        require(
            False,
            f"{name}: {len(trained)} replies trained, {len(expected)} expected; first missing or extra: "
            f"{(lost or [x for x in trained if x not in expected] or ['order differs'])[0]}",
        )
    return trimmed


def _run(sources: Sources, cid: str, first: int, replies: list[str], text: str, trimmable: dict) -> tuple | None:
    """The replies a row trains as (conversation, index), and whether its user turn is trimmed,
    if they are consecutive replies of `cid` from `first` and the row's input is that
    conversation's window ending at the last (or, for a reply in `trimmable`, that exchange
    alone with its user turn a whitespace-boundary tail of the source's that fits); else None."""
    last = first + len(replies) - 1
    said = [reply for _, reply in sources.exchanges[cid][first : last + 1]]
    if said != replies:
        return None
    run = [(cid, index) for index in range(first, last + 1)]
    if any(text == render(sources.window(cid, start, last)) for start in range(first + 1)):
        return run, False
    fits = trimmable.get((cid, first))
    if fits is None or last != first:
        return None
    before = render([{"role": "system", "content": sources.system[cid]}]) + "<|user|>\n"
    after = f"{END}\n" + render([{"role": "assistant", "content": said[0]}])
    if not (text.startswith(before) and text.endswith(after)) or len(text) <= len(before) + len(after):
        return None
    tail, source = text[len(before) : len(text) - len(after)], sources.exchanges[cid][first][0]
    cut = len(source) - len(tail)
    at_a_word = cut > 0 and source[cut:] == tail and source[cut - 1].isspace() and not tail[0].isspace()
    if not (at_a_word and fits(tail)):
        return None
    # The longest such tail: one word more (or, before the first, the whole turn) would not fit.
    word = re.search(r"\S+\s+$", source[:cut])
    return (run, True) if not fits(word.group() + tail if word else source) else None


def expected_replies(sources: Sources, fmt: str, mode: str, trains_history: bool, left_out: set) -> list:
    """Each reply once, or with pair rows whose history is trained, each reply's history again."""
    if mode == "pair" and trains_history:
        return [(cid, i) for cid in sources.order for k in range(len(sources.exchanges[cid])) for i in range(k + 1)]
    return [(cid, i) for cid, i in sources.replies() if sources.pair_ids[cid][i] not in left_out]


def fitting_notes(path: Path, sources: Sources, tokenizer) -> tuple[set, set]:
    """The pair ids a fitted export left out, each checked to be too long to fit even with only
    the last word of its user turn, and the (conversation, index) of those it trimmed."""
    skipped = path.with_suffix(".skipped")
    listed: dict[str, set] = {"left out": set(), "trimmed": set()}
    for line in skipped.read_text(encoding="utf-8").splitlines() if skipped.exists() else ():
        kind, _, rest = line.partition(": conversation ")
        require(kind in listed, f"{skipped.name}: an unexpected line {line!r}")
        listed[kind].add(rest.split(" pair ")[1].split(" ")[0])
    trimmed = set()
    for cid in sources.order:
        for index, pair in enumerate(sources.pair_ids[cid]):
            if pair in listed["left out"]:
                last_word = re.search(r"\S+\s*$", sources.exchanges[cid][index][0]).group()
                length = sources.length(tokenizer, cid, index, last_word)
                require(
                    length > MAX_LENGTH,
                    f"{path.name}: left out {pair}, which fits ({length} tokens) with the last word of its user turn",
                )
            if pair in listed["trimmed"]:
                trimmed.add((cid, index))
    return listed["left out"], trimmed


def trimmable(sources: Sources, tokenizer) -> dict:
    """(conversation, index) -> whether a row of it alone with a given user turn fits, for the
    replies over MAX_LENGTH tokens alone with their whole user turn and the system prompt."""
    return {
        (cid, index): lambda user, cid=cid, index=index: sources.length(tokenizer, cid, index, user) <= MAX_LENGTH
        for cid, index in sources.replies()
        if sources.length(tokenizer, cid, index) > MAX_LENGTH
    }


# Training


def sft_trainer(dataset, tokenizer, model_dir: Path, output: Path, *, max_length, lora: bool) -> SFTTrainer:
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
        max_length=max_length,
        assistant_only_loss=True,
        completion_only_loss=True if prompt_completion else None,
        dataloader_num_workers=0,
        seed=0,
    )
    peft_config = (
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM") if lora else None
    )
    trainer = SFTTrainer(
        model=LlamaForCausalLM.from_pretrained(model_dir),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.remove_callback(transformers.PrinterCallback)
    return trainer


def train_trl(name: str, trainer: SFTTrainer, lora: bool = False) -> None:
    before = {key: value.detach().clone() for key, value in trainer.model.named_parameters()}
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    require(len(losses) == 2 and all(math.isfinite(loss) for loss in losses), f"{name}: losses {losses}")
    changed = {key for key, value in trainer.model.named_parameters() if not torch.equal(value.detach(), before[key])}
    require(bool(changed), f"{name}: no weight changed")
    if lora:
        require(all("lora_" in key for key in changed), f"{name}: LoRA changed base weights {sorted(changed)[:3]}")
    print(f"  TRL trained 2 steps{' (LoRA)' if lora else ''}: losses {[round(x, 3) for x in losses]}")


def train_tokens(name: str, examples: list[tuple[list[int], list[int]]], model_dir: Path) -> None:
    """2 steps of next-token loss on the labels a trainer's conversion produced."""
    model = LlamaForCausalLM.from_pretrained(model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for input_ids, labels in examples[:2]:
        out = model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels]))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
    require(all(math.isfinite(x) for x in losses), f"{name}: losses {losses}")
    require(
        any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())), f"{name}: no weight changed"
    )
    print(f"  trained 2 steps on its labels: losses {[round(x, 3) for x in losses]}")


def tokens_of(tokenizer, view_rows) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of text views (LLaMA-Factory's): the plain template, replies trained."""
    out = []
    for text, replies in view_rows:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        labels = [-100] * len(ids)
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        cursor = 0
        for reply in replies:
            start = text.index(reply + END, cursor)
            cursor = start + len(reply) + len(END)
            for i, (a, _) in enumerate(encoding["offset_mapping"]):
                if start <= a < cursor:
                    labels[i] = ids[i]
        out.append((ids, labels))
    return out


# One case: every export of one training file


def load(path: Path, fmt: str) -> tuple[list[dict], datasets.Dataset]:
    """The export through `datasets`: every line a row, every row the same columns, no null
    (but a message's `weight`, which only replies carry)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    require(len(dataset) == len(lines) > 0, f"{path.name}: {len(lines)} lines but {len(dataset)} rows loaded")
    columns = set(dataset.column_names)
    for number, (line, row) in enumerate(zip(lines, dataset), 1):
        require(set(line) == columns, f"{path.name} line {number}: columns {sorted(line)}, expected {sorted(columns)}")
        nulls = [key for key, value in row.items() if key != "metadata" and has_null(value)]
        require(not nulls, f"{path.name} line {number}: null in {nulls}")
    return lines, dataset


def has_null(value) -> bool:
    if isinstance(value, dict):
        return any(has_null(v) for k, v in value.items() if k != "weight")
    if isinstance(value, list):
        return any(has_null(v) for v in value)
    return value is None


def load_card_folder(folder: Path, cache_dir: str | None = None) -> None:
    """A split export loads by its folder alone, through the card's `configs`, and as a folder
    of JSON files: exactly the rows of its files, nothing cached from an earlier export."""
    files = {
        path.stem.split("-")[0]: [json.loads(line) for line in path.open(encoding="utf-8")]
        for path in folder.glob("*.jsonl")
    }
    for how, splits in (
        ("load_dataset(DIR)", datasets.load_dataset(str(folder), cache_dir=cache_dir)),
        (
            "load_dataset('json', data_dir=DIR)",
            datasets.load_dataset("json", data_dir=str(folder), cache_dir=cache_dir),
        ),
    ):
        loaded = {name: split.to_list() for name, split in splits.items()}
        require(
            loaded == files,
            f"{folder}: {how} gives splits {[(k, len(v)) for k, v in loaded.items()]}, the files "
            f"{[(k, len(v)) for k, v in files.items()]} (or other rows)",
        )
    print(f"{folder.name}: {', '.join(f'{name} {len(rows)} rows' for name, rows in files.items())}, loaded as written")


def check_export(path: Path, case: Path, sources: Sources, tokenizer, model_dir: Path, tmp: Path, train: bool) -> None:
    fmt = next(f for f in FORMATS if path.stem.startswith(f + "-"))
    mode = path.stem[len(fmt) + 1 :].removesuffix("-fitted")
    fitted = path.stem.endswith("-fitted")
    rows, dataset = load(path, fmt)
    skipped, listed = fitting_notes(path, sources, tokenizer) if fitted else (set(), set())
    may_trim = trimmable(sources, tokenizer) if fitted else {}
    report = json.loads(path.with_suffix(".check.json").read_text(encoding="utf-8")) if not fitted else None
    print(f"{path.name}: {len(rows)} rows")

    def compared(trainer: str, view, trains_history: bool) -> None:
        name = f"{path.name} ({trainer})"
        trimmed = compare(name, view, sources, expected_replies(sources, fmt, mode, trains_history, skipped), may_trim)
        require(
            trimmed == listed,
            f"{name}: rows trim the user turns of {sorted(trimmed)}, the export lists {sorted(listed)}",
        )
        print(
            f"  {trainer}: every row and reply as in the sources ({sum(len(r) for _, r in view)} replies trained"
            f"{f', {len(trimmed)} with a trimmed user turn' if trimmed else ''})"
        )

    if fmt in ("messages", "prompt-completion") and not (fitted and fmt == "messages"):
        trainer, view = trl_view(dataset, tokenizer, model_dir, tmp / path.stem, None)
        compared("TRL", view, fmt == "messages")
        if report is not None:
            truncated = sft_trainer(
                dataset, tokenizer, model_dir, tmp / f"{path.stem}-1024", max_length=MAX_LENGTH, lora=False
            ).train_dataset
            kept = sum(sum(1 for label in ex["labels"] if label != -100) for ex in truncated)
            full = sum(sum(1 for label in ex["labels"] if label != -100) for ex in trainer.train_dataset)
            cost = report["length_cost"]["truncating"]
            require(
                full == report["loss_tokens"]["total"],
                f"{path.name}: TRL trains {full} loss tokens, check says {report['loss_tokens']['total']}",
            )
            require(
                (kept, len(truncated)) == (cost["kept"], len(rows) - cost["rows_left_without_loss"]),
                f"{path.name}: at max_length {MAX_LENGTH} TRL keeps {kept} loss tokens in {len(truncated)} rows; check says "
                f"{cost['kept']} in {len(rows) - cost['rows_left_without_loss']}",
            )
            print(
                f"  TRL max_length={MAX_LENGTH}: keeps {kept} of {full} loss tokens, {len(truncated)} of {len(rows)} rows, as check says"
            )
        if train:
            train_trl(path.name, trainer)
    if fmt in ("messages", "sharegpt"):
        examples = axolotl_view(rows, fmt, tokenizer, sequence_len=100_000)
        view = [token_view(tokenizer, ids, labels) for ids, labels in examples]
        compared("Axolotl", view, not fitted)
        if report is not None:
            # Axolotl's excess_length_strategy "drop" (its default): keep 2 <= len <= sequence_len.
            bounded = axolotl_view(rows, fmt, tokenizer, sequence_len=MAX_LENGTH)
            kept_rows = [labels for ids, labels in bounded if 2 <= len(ids) <= MAX_LENGTH]
            kept = sum(sum(1 for label in labels if label != -100) for labels in kept_rows)
            cost = report["length_cost"]["dropping"]
            require(
                (kept, len(rows) - len(kept_rows)) == (cost["kept"], cost["rows_dropped"]),
                f"{path.name}: at sequence_len {MAX_LENGTH} Axolotl keeps {kept} loss tokens and drops "
                f"{len(rows) - len(kept_rows)} rows; check says {cost['kept']} and {cost['rows_dropped']}",
            )
            print(
                f"  Axolotl sequence_len={MAX_LENGTH}: keeps {kept} loss tokens, drops {len(rows) - len(kept_rows)} rows, as check says"
            )
        if train:
            train_tokens(path.name, examples, model_dir)
    if fmt in ("sharegpt", "alpaca"):
        view = llama_factory_view(rows, fmt, case, fitted)
        compared("LLaMA-Factory", view, not fitted)
        if train and fmt == "alpaca":
            train_tokens(path.name, tokens_of(tokenizer, view), model_dir)


def verify(case: Path, tokenizer_dir: Path, mutations: bool) -> None:
    started = time.monotonic()
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    sources = Sources(case)
    exports = sorted((case / "exports").glob("*.jsonl"))
    require(
        {f for p in exports for f in FORMATS if p.stem.startswith(f + "-")} == set(FORMATS),
        f"{case}: an export of every format",
    )
    with tempfile.TemporaryDirectory(prefix="check-trainers-") as tmp:
        model_dir = make_model(Path(tmp), tokenizer)
        if mutations:
            return check_mutations(case, exports, sources, tokenizer, model_dir, Path(tmp))
        for folder in sorted(p.parent for p in (case / "exports").glob("*/README.md")):
            load_card_folder(folder)
        for path in exports:
            check_export(path, case, sources, tokenizer, model_dir, Path(tmp), train=True)
        first = case / "exports" / "messages-conversation.jsonl"
        train_trl(
            f"{first.name} (LoRA)",
            sft_trainer(
                load(first, "messages")[1], tokenizer, model_dir, Path(tmp) / "lora", max_length=None, lora=True
            ),
            lora=True,
        )
    print(f"check-trainers {case.name}: all checks passed in {time.monotonic() - started:.0f}s")


# Mutations: each must be caught


def _duplicate_user_turn(rows, trimmed):
    rows[0]["messages"].insert(1, copy.deepcopy(rows[0]["messages"][1]))


def _drop_exchange(rows, trimmed):
    row = next(r for r in rows if len(r["messages"]) >= 5)
    del row["messages"][1:3]


def _swap_system_prompt(rows, trimmed):
    rows[0]["messages"][0]["content"] = "You are a helpful assistant."


def _delete_row(rows, trimmed):
    del rows[-1]


def _shift_completions(rows, trimmed):
    completions = [row["completion"] for row in rows]
    for row, completion in zip(rows, completions[1:] + completions[:1]):
        row["completion"] = completion


def _trimmed_user_turn(rows, trimmed) -> dict:
    """The user turn of the first row whose user turn the export trimmed."""
    return next(r["prompt"][-1] for r in rows if r["metadata"]["pair_ids"][0] in trimmed)


def _trim_mid_word(rows, trimmed):
    turn = _trimmed_user_turn(rows, trimmed)
    turn["content"] = turn["content"][1:]


def _trim_a_word_too_far(rows, trimmed):
    turn = _trimmed_user_turn(rows, trimmed)
    turn["content"] = turn["content"].split(maxsplit=1)[1]


def _trim_a_row_that_fits(rows, trimmed):
    row = next(
        r
        for r in rows
        if len(r["prompt"]) == 2
        and r["metadata"]["pair_ids"][0] not in trimmed
        and len(r["prompt"][1]["content"].split()) > 1
    )
    row["prompt"][1]["content"] = row["prompt"][1]["content"].split(maxsplit=1)[1]


# name: (the export mutated, the mutation, whether it needs a row whose user turn was trimmed)
MUTATIONS = {
    "duplicated user turn": ("messages-conversation", _duplicate_user_turn, False),
    "dropped exchange": ("messages-conversation", _drop_exchange, False),
    "swapped system prompt": ("messages-conversation", _swap_system_prompt, False),
    "deleted row": ("messages-conversation", _delete_row, False),
    "completions shifted by one": ("prompt-completion-pair", _shift_completions, False),
    "trimmed user turn cut mid-word": ("prompt-completion-pair-fitted", _trim_mid_word, True),
    "trimmed user turn cut a word too far": ("prompt-completion-pair-fitted", _trim_a_word_too_far, True),
    "user turn trimmed in a row that fits": ("prompt-completion-pair-fitted", _trim_a_row_that_fits, False),
}


def check_mutations(case: Path, exports: list[Path], sources: Sources, tokenizer, model_dir: Path, tmp: Path) -> None:
    for name, (stem, mutate, needs_trim) in MUTATIONS.items():
        original = case / "exports" / f"{stem}.jsonl"
        rows = [json.loads(line) for line in original.read_text(encoding="utf-8").splitlines()]
        trimmed = {sources.pair_ids[cid][index] for cid, index in fitting_notes(original, sources, tokenizer)[1]}
        if needs_trim and not trimmed:
            print(f"mutation {name!r}: not applicable, {original.name} trims no user turn")
            continue
        mutate(rows, trimmed)
        mutated = tmp / name.replace(" ", "-") / original.name
        mutated.parent.mkdir()
        mutated.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        for beside in (".check.json", ".skipped"):  # check's report, a fitted export's stderr
            if original.with_suffix(beside).exists():
                mutated.with_suffix(beside).write_text(original.with_suffix(beside).read_text(encoding="utf-8"))
        try:
            check_export(mutated, case, sources, tokenizer, model_dir, tmp, train=False)
        except CheckFailed as failure:
            print(f"mutation {name!r} caught: {failure}")
            continue
        raise CheckFailed(f"the mutation {name!r} of {original.name} passed the checks")
    print(f"check-trainers {case.name}: every mutation was caught")


if __name__ == "__main__":
    try:
        if len(sys.argv) == 3 and sys.argv[1] == "tokenizer":
            make_tokenizer(Path(sys.argv[2]))
        elif len(sys.argv) == 4 and sys.argv[1] == "loads":
            datasets.disable_progress_bars()
            load_card_folder(Path(sys.argv[2]), cache_dir=sys.argv[3])
        elif len(sys.argv) in (4, 5) and sys.argv[1] == "verify" and sys.argv[4:] in ([], ["--mutations"]):
            verify(Path(sys.argv[2]), Path(sys.argv[3]), mutations=sys.argv[4:] == ["--mutations"])
        else:
            sys.exit(__doc__.split("\n\n")[1])
    except CheckFailed as failure:
        sys.exit(f"check-trainers: FAILED: {failure}")
