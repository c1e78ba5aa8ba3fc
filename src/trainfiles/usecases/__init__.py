"""What the commands do, one module per group: registering conversations (conversations),
training files and their versions (training_files), exports and checks (exports), the
store's integrity (housekeeping); and how a create or add reads its conversations
(gathering, examining, workers, findings, selection). The library (api.py) and the CLI
call these."""
