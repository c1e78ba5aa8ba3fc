"""trainfiles: LoRA training files from enriched conversations, kept in a versioned store.

The library is `Trainfiles` (docs/python.md); the `trainfiles` command is a layer over the same code.
"""

__version__ = "0.3.0"

from trainfiles.api import Registration, Trainfiles, TrainingFile, Version
from trainfiles.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageUnavailable,
    TrainfilesError,
    UsageError,
)

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "Registration",
    "StorageUnavailable",
    "Trainfiles",
    "TrainfilesError",
    "TrainingFile",
    "UsageError",
    "Version",
    "__version__",
]
