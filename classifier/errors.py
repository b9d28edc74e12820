"""The callsift error hierarchy.

Every error a user can cause derives from :class:`CallsiftError`, so the CLI and the
API can turn it into a clear message instead of a traceback.
"""


class CallsiftError(Exception):
    """Base class of every error callsift raises on purpose."""


class InvalidAudioError(CallsiftError):
    """Audio that cannot be decoded or is outside what callsift accepts."""


class AudioTooShortError(InvalidAudioError):
    """Audio shorter than the minimum length."""


class AudioTooLongError(InvalidAudioError):
    """Audio longer than the configured maximum length."""


class InvalidManifestError(CallsiftError):
    """A manifest that does not follow docs/data-format.md."""


class InvalidParameterError(CallsiftError, ValueError):
    """A parameter outside its documented range."""


class ModelMismatchError(CallsiftError):
    """A saved model whose library versions or feature list differ from this install."""


class UnsupportedAudioError(InvalidAudioError):
    """Readable audio in a container, encoding, rate or channel layout callsift does not accept."""


class RegistryError(CallsiftError):
    """A model registry request that cannot be served: unknown model, alias or version."""
