"""trainfiles: aggregate enriched conversations into LoRA training files."""

__version__ = "0.2.0"
