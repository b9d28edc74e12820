"""callsift core: audio loading, features, caller history and the model object.

This package imports no web framework, no MLflow and no database driver, so that
training and serving share exactly the same feature code. (:mod:`classifier.registry`
reads models from an MLflow registry for both, importing MLflow inside its functions.)
"""

from classifier.errors import (
    CallsiftError,
    InvalidAudioError,
    InvalidManifestError,
    ModelMismatchError,
)

__all__ = [
    "CallsiftError",
    "InvalidAudioError",
    "InvalidManifestError",
    "ModelMismatchError",
]

__version__ = "0.1.0"
