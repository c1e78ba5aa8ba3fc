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

.PHONY: test demo bench fixtures clean

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

fixtures:
	$(PYTHON) fixtures/generate.py

clean:
	rm -rf $(VENV) $(DEMO) bench/out .pytest_cache
