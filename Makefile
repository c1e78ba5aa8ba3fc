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

.PHONY: test demo bench check-trainers fixtures docs clean

$(READY): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "trainfiles needs Python 3.11 or later"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

test: $(READY)
	$(BIN)/python -m pytest -q

demo: $(READY)
	rm -rf $(DEMO)
	$(TF) conversations import fixtures/manifest.csv
	$(TF) conversations scan fixtures/conversations
	$(TF) conversations list
	$(TF) create --name demo-file --batch $(BATCH_A) --target-model llama-3.1-8b
	$(TF) add demo-file --batch $(BATCH_B) --skip-invalid
	$(TF) list
	$(TF) show demo-file
	$(TF) export demo-file --format json --output $(DEMO)/demo-file.json
	$(TF) export demo-file --format jsonl --output $(DEMO)/demo-file.jsonl
	@echo "demo: catalog, store and exports are in $(DEMO)/"

bench: $(READY)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/s3_bench.py

$(TRAINERS_VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(TRAINERS_VENV)
	# The CPU build first, so nothing pulls a CUDA torch.
	$(TRAINERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(TRAINERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[trainers]'
	touch $@

# Every trainer export of the fixtures, loaded by datasets and trained on by TRL and PEFT, offline.
check-trainers: $(TRAINERS_VENV)/.ready
	rm -rf $(CHECKS)
	mkdir -p $(CHECKS)/exports
	$(TFC) conversations import fixtures/manifest.csv > /dev/null
	$(TFC) conversations scan fixtures/conversations > /dev/null
	$(TFC) create --name check --batch $(BATCH_A) > /dev/null
	$(TFC) add check --batch $(BATCH_B) --skip-invalid > /dev/null
	for spec in messages:conversation messages:pair prompt-completion:pair sharegpt:conversation sharegpt:pair alpaca:conversation alpaca:pair; do \
	  fmt=$${spec%%:*}; rows=$${spec##*:}; \
	  $(TFC) export check --format $$fmt --rows $$rows --with-metadata --output $(CHECKS)/exports/$$fmt-$$rows.jsonl || exit 1; \
	done
	$(TFC) export check --format messages --split validation=0.3 --output-dir $(CHECKS)/exports/messages-split
	$(TFC) check check --format messages
	$(TRAINERS_VENV)/bin/python tools/check_trainers.py $(CHECKS)/exports

# docs/cli.md from every command's --help (tests/test_docs.py fails when it is stale).
docs: $(READY)
	$(BIN)/python tools/cli_reference.py

fixtures:
	$(PYTHON) fixtures/generate.py

clean:
	rm -rf $(VENV) $(TRAINERS_VENV) $(DEMO) bench/out .pytest_cache
