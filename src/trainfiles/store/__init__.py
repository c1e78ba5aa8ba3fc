"""The store: everything docs/store.md describes. The commit protocol (commits), a version's
outputs and members (outputs, members), one change as a new version (changes), the local
SQLite index of the store's log and of registered conversations (catalog, migrations,
index), and catalogs made before the store held versions (legacy)."""
