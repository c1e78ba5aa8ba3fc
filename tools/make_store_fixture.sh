#!/bin/sh
# Writes fixtures/store-92696c5: a store made by trainfiles at commit 92696c5 (store format 1,
# before registrations and the protocol object), two files through every operation. Kept as
# it was written: tests/test_store_upgrade.py reads it, then upgrades a copy.
# Usage: sh tools/make_store_fixture.sh   (from the project's root, with .venv made)
set -eu
root=$(pwd)
work=$(mktemp -d)
git worktree add --detach "$work/code" 92696c5 >/dev/null
cp -r fixtures/conversations "$work/sources"
t=1764547200  # 2025-12-01T00:00:00Z
run() { epoch=$1; shift; (cd "$work" && PYTHONPATH="$work/code/src" TRAINFILES_CATALOG="$work/catalog.db" \
    TRAINFILES_STORE="$work/store" TRAINFILES_USER=alice SOURCE_DATE_EPOCH="$epoch" \
    "$root/.venv/bin/python" -m trainfiles "$@" >/dev/null); }
run $t conversations scan sources
ids=$(cd "$work" && PYTHONPATH="$work/code/src" TRAINFILES_CATALOG="$work/catalog.db" TRAINFILES_STORE="$work/store" \
    "$root/.venv/bin/python" -m trainfiles conversations list --status completed --json \
    | "$root/.venv/bin/python" -c 'import json,sys; print(" ".join(c["conversation_id"] for c in json.load(sys.stdin)))')
set -- $ids
run $((t + 1)) create --name december --description "first batch" --target-model llama-3.1-8b --id "$1" --id "$2"
run $((t + 2)) add december --id "$3" --id "$4"
run $((t + 3)) remove december --id "$2"
run $((t + 4)) rename december december-v2
run $((t + 5)) describe december-v2 --description "first batch, reviewed"
run $((t + 6)) create --name january --id "$5"
run $((t + 7)) archive january
run $((t + 8)) unarchive january
run $((t + 9)) restore december-v2 --version 2
rm -rf fixtures/store-92696c5
cp -r "$work/store" fixtures/store-92696c5
git worktree remove --force "$work/code"
rm -rf "$work"
echo "wrote fixtures/store-92696c5"
