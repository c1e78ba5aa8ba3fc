"""trainfiles: aggregate enriched conversations into LoRA training files."""

__version__ = "0.1.0"
