# Every target sets up .venv itself: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
DEMO := demo
# The two generation batches of fixtures/manifest.csv.
BATCH_A := a1b2c3d4-0a0a-4aaa-8aaa-00000000000a
BATCH_B := b1b2c3d4-0b0b-4bbb-8bbb-00000000000b
TF := $(BIN)/trainfiles --catalog $(DEMO)/catalog.db --store $(DEMO)/store --user demo

TRAINERS_VENV := .venv-trainers
CHECKS := $(DEMO)/trainer-check
TFC := $(TRAINERS_VENV)/bin/trainfiles --catalog $(CHECKS)/catalog.db --store $(CHECKS)/store --user check

.PHONY: test test-fast test-browser lint demo bench check-trainers fixtures docs clean

$(READY): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "trainfiles needs Python 3.11 or later"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,s3,lint,web]'
	touch $@

test: $(READY)
	$(BIN)/python -m pytest -q

# The pages in headless Chromium (Debian's chromium package; .ci/run installs it).
test-browser: $(READY)
	$(BIN)/python -m pytest -q -m browser

# The quick part: pure and in-process tests, no live S3 server, no killed or raced processes.
test-fast: $(READY)
	$(BIN)/python -m pytest -q -n auto -m "not slow and not s3 and not crash"

lint: $(READY)
	$(BIN)/ruff check src tests bench tools fixtures/generate.py
	$(BIN)/ruff format --check src tests bench tools fixtures/generate.py
	$(BIN)/mypy

demo: $(READY)
	rm -rf $(DEMO)
	mkdir -p $(DEMO)
	$(TF) conversations import fixtures/manifest.csv
	$(TF) conversations scan fixtures/conversations
	$(TF) conversations list
	$(TF) create --name demo-file --batch $(BATCH_A) --target-model llama-3.1-8b
	$(TF) add demo-file --batch $(BATCH_B) --skip-invalid
	$(TF) list
	$(TF) show demo-file
	$(TF) log demo-file
	$(TF) verify --sources
	$(TF) export demo-file --format json --output $(DEMO)/demo-file.json
	$(TF) export demo-file --format jsonl --output $(DEMO)/demo-file.jsonl
	$(TF) report -o $(DEMO)/report
	@echo "demo: catalog, store, exports and the report ($(DEMO)/report/index.html) are in $(DEMO)/"

bench: $(READY)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/s3_bench.py
	$(BIN)/python bench/web_bench.py

$(TRAINERS_VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(TRAINERS_VENV)
	# The CPU build first, so nothing pulls a CUDA torch.
	$(TRAINERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	# mistral-common for the data file it ships: Mistral NeMo's tokenizer (tekken_240911.json).
	$(TRAINERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[trainers]' mistral-common==1.13.1
	# Axolotl and LLaMA-Factory pin versions of transformers, trl, datasets and peft other than
	# these (and Axolotl a torch <= 2.12.1): installed without their dependencies, for their
	# dataset conversion code only, with the two small packages Axolotl's imports need.
	$(TRAINERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps axolotl==0.19.0 llamafactory==0.9.5 colorama addict
	touch $@

# Every trainer export (every format and row mode, as they are and fitted to 1,024 tokens) of
# the fixtures and of the real reference conversations, converted by TRL, Axolotl and
# LLaMA-Factory and compared with the source files; then trained on, offline; then mutated
# exports, each of which must fail (tools/check_trainers.py).
REFERENCE_DIR ?= ../shared/reference/enriched
SPECS := messages:conversation messages:pair prompt-completion:pair sharegpt:conversation sharegpt:pair alpaca:conversation alpaca:pair
PYT := $(TRAINERS_VENV)/bin/python
check-trainers: $(TRAINERS_VENV)/.ready
	rm -rf $(CHECKS)
	mkdir -p $(CHECKS)
	$(TFC) conversations import fixtures/manifest.csv > /dev/null
	$(TFC) conversations scan fixtures/conversations > /dev/null
	$(TFC) conversations scan $(REFERENCE_DIR) > /dev/null
	$(TFC) conversations list --json > $(CHECKS)/conversations.json
	$(TFC) create --name fixtures --batch $(BATCH_A) > /dev/null
	$(TFC) add fixtures --batch $(BATCH_B) --skip-invalid > /dev/null
	$(PYT) -c 'import json, os, sys; print("\n".join(c["conversation_id"] for c in json.load(open(sys.argv[1])) if os.path.samefile(os.path.dirname(c["enriched_file_path"]), sys.argv[2])))' $(CHECKS)/conversations.json $(REFERENCE_DIR) > $(CHECKS)/reference-ids.txt
	$(TFC) create --name reference --ids-file $(CHECKS)/reference-ids.txt > /dev/null
	# A split folder exported, loaded, grown and exported again loads the new rows with one cache.
	$(TFC) create --name fresh --batch $(BATCH_A) > /dev/null
	$(TFC) export fresh --format messages --split validation=0.3 --output-dir $(CHECKS)/fresh 2> /dev/null
	$(PYT) tools/check_trainers.py loads $(CHECKS)/fresh $(CHECKS)/datasets-cache
	$(TFC) add fresh --batch $(BATCH_B) --skip-invalid > /dev/null
	$(TFC) export fresh --format messages --split validation=0.3 --output-dir $(CHECKS)/fresh --with-metadata 2> /dev/null
	$(PYT) tools/check_trainers.py loads $(CHECKS)/fresh $(CHECKS)/datasets-cache
	$(PYT) tools/check_trainers.py tokenizer $(CHECKS)/tokenizer
	for case in fixtures reference; do \
	  out=$(CHECKS)/$$case/exports; mkdir -p $$out; \
	  $(TFC) show $$case --json > $(CHECKS)/$$case/show.json || exit 1; \
	  for spec in $(SPECS); do \
	    fmt=$${spec%%:*}; rows=$${spec##*:}; \
	    $(TFC) export $$case --format $$fmt --rows $$rows --with-metadata --output $$out/$$fmt-$$rows.jsonl || exit 1; \
	    $(TFC) check $$out/$$fmt-$$rows.jsonl --tokenizer $(CHECKS)/tokenizer --max-tokens 1024 --json > $$out/$$fmt-$$rows.check.json || exit 1; \
	    $(TFC) export $$case --format $$fmt --rows $$rows --with-metadata --max-tokens 1024 --tokenizer $(CHECKS)/tokenizer \
	      --skip-invalid --output $$out/$$fmt-$$rows-fitted.jsonl 2> $$out/$$fmt-$$rows-fitted.skipped || exit 1; \
	  done; \
	  for fmt in messages sharegpt alpaca; do \
	    $(TFC) export $$case --format $$fmt --split validation=0.3 --output-dir $$out/$$fmt-split 2> /dev/null || exit 1; \
	  done; \
	  $(TFC) check $$case --tokenizer $(CHECKS)/tokenizer --max-tokens 1024 || exit 1; \
	  $(PYT) tools/check_trainers.py verify $(CHECKS)/$$case $(CHECKS)/tokenizer || exit 1; \
	  $(PYT) tools/check_trainers.py verify $(CHECKS)/$$case $(CHECKS)/tokenizer --mutations || exit 1; \
	done

# docs/cli.md from every command's --help (tests/test_docs.py fails when it is stale).
docs: $(READY)
	$(BIN)/python tools/cli_reference.py

fixtures:
	$(PYTHON) fixtures/generate.py

clean:
	rm -rf $(VENV) $(TRAINERS_VENV) $(DEMO) bench/out .pytest_cache
