"""The pure core: data in, data out. The v4 format read and written (enriched, builder),
the store's records checked (records), trainer formats and fitting to a context length
(trainer_formats, fitting, tokenizing, preflight), dataset cards and trainer recipes (card,
recipes), the platform's manifest (manifest), and the small rules every layer shares
(prefixes, text, clock, vocabulary). Nothing here touches the catalog or the store; only
tokenizing reads a file, the tokenizer it is given."""
