"""Recordings named by URL in a manifest: ``s3://``, ``gs://``, ``http(s)://``, ``file://``.

A manifest's ``audio_path`` may be a URL that fsspec opens, for recordings kept where
a centre keeps them (an object store, a web server). The bytes are read through fsspec
into memory, at most :func:`max_bytes` of them, and decoded by the same
:func:`classifier.audio.load_audio` as a local file. ``file://`` URLs and plain paths
never come here: they are local paths (:func:`local_path`) and keep the local code.

Credentials come from the environment only (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or fsspec's configuration for s3;
``GOOGLE_APPLICATION_CREDENTIALS`` for gs), never from the manifest: a URL that carries
any (``user:pass@``, or a query parameter such as ``X-Amz-Signature``, ``token``,
``sig``) is refused, and every URL shown to anyone goes through :func:`redact_url`.

Settings (environment):

``CALLSIFT_AUDIO_URL_SCHEMES``
    Schemes allowed, comma-separated (default ``file,s3,gs,http,https``).
``CALLSIFT_AUDIO_URL_TIMEOUT_S``
    Seconds a connection or a read may take before the call fails (default 30).
``CALLSIFT_AUDIO_URL_MAX_BYTES``
    Largest recording read from a URL (default :data:`DEFAULT_MAX_BYTES`).

fsspec and its backends are imported by the functions that need them: importing this
module costs nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit
from urllib.request import url2pathname

from classifier.audio import MAX_DECODED_SAMPLES
from classifier.errors import CallsiftError, InvalidParameterError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SCHEMES",
    "DEFAULT_TIMEOUT_S",
    "AudioSourceError",
    "allowed_schemes",
    "check_settings",
    "is_url",
    "local_path",
    "read_url",
    "redact_url",
    "sha256_hex",
    "url_problem",
    "url_scheme",
]

SCHEMES_ENV = "CALLSIFT_AUDIO_URL_SCHEMES"
TIMEOUT_ENV = "CALLSIFT_AUDIO_URL_TIMEOUT_S"
MAX_BYTES_ENV = "CALLSIFT_AUDIO_URL_MAX_BYTES"
DEFAULT_SCHEMES: tuple[str, ...] = ("file", "s3", "gs", "http", "https")
DEFAULT_TIMEOUT_S = 30.0
#: The decoded-samples budget of :func:`classifier.audio.load_audio` at 4 bytes a
#: sample (PCM 32-bit or float; 16-bit PCM, G.711 and FLAC take less): any file the
#: loader would decode fits, and a URL cannot make this process hold more.
DEFAULT_MAX_BYTES = MAX_DECODED_SAMPLES * 4
#: Shown in place of a credential.
REDACTED = "***"

# Two letters at least: "C:" is a Windows drive, not a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
# Query parameter names (split at - _ .) that carry a credential: AWS (X-Amz-Signature,
# X-Amz-Credential, X-Amz-Security-Token, AWSAccessKeyId, Signature), Google
# (X-Goog-Signature, X-Goog-Credential), Azure SAS (sig), OAuth (access_token) and the
# usual key, secret, password.
_SECRET_WORDS = frozenset(
    {
        "sig",
        "signature",
        "credential",
        "credentials",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "key",
        "apikey",
        "accesskey",
        "awsaccesskeyid",
        "auth",
        "authorization",
    }
)


class AudioSourceError(CallsiftError):
    """A recording's URL that cannot be read: not allowed, carries credentials, not
    found, access denied, unreachable or too large. Its message shows the URL redacted."""


def url_scheme(text: str) -> str | None:
    """The scheme of a URL in lower case, or None for a path."""
    m = _SCHEME.match(text.strip())
    return m.group(1).lower() if m else None


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (has a scheme) rather than a path."""
    return url_scheme(text) is not None


def _secret_name(name: str) -> bool:
    words = re.split(r"[-_.]", unquote_plus(name).strip().lower())
    return any(w in _SECRET_WORDS for w in words) or "".join(words) in _SECRET_WORDS


def redact_url(text: str) -> str:
    """``text`` fit to show: a URL's user and password, and the values of its query
    parameters that carry credentials, replaced by ``***``; a path is returned as it is.

    Examples
    --------
    >>> redact_url("https://ann:pw@host/a.wav?X-Amz-Signature=abc&v=2")
    'https://***@host/a.wav?X-Amz-Signature=***&v=2'
    """
    if not is_url(text):
        return text
    try:
        parts = urlsplit(text.strip())
    except ValueError:  # an unparseable netloc: show nothing past the scheme
        return f"{url_scheme(text)}://{REDACTED}"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    fragment = _redact_fragment(parts.fragment)
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_pair(pair: str) -> str:
    name, eq, _value = pair.partition("=")
    if _secret_name(name):
        return f"{name}={REDACTED}" if eq else name
    return pair


def _redact_fragment(fragment: str) -> str:
    # A fragment is not sent, but people paste tokens there too (#access_token=...).
    if "=" not in fragment:
        return fragment
    return "&".join(_redact_pair(p) for p in fragment.split("&"))


def _credentials_in(text: str) -> list[str]:
    """What in a URL carries credentials: "user:password@" and secret parameter names."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return []
    found = []
    if "@" in parts.netloc:
        found.append("a user name or password before '@'")
    names = [p.partition("=")[0] for p in (parts.query + "&" + parts.fragment).split("&") if p]
    secret = sorted({unquote_plus(n) for n in names if _secret_name(n)})
    if secret:
        found.append("the parameter(s) " + ", ".join(secret))
    return found


def allowed_schemes() -> tuple[str, ...]:
    """The schemes ``CALLSIFT_AUDIO_URL_SCHEMES`` allows (default :data:`DEFAULT_SCHEMES`)."""
    raw = os.environ.get(SCHEMES_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_SCHEMES
    return tuple(s.strip().lower().rstrip(":/") for s in raw.split(",") if s.strip())


def timeout_s() -> float:
    """Seconds a connection or read of a URL may take (``CALLSIFT_AUDIO_URL_TIMEOUT_S``)."""
    return _positive(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, float)


def max_bytes() -> int:
    """Largest recording read from a URL (``CALLSIFT_AUDIO_URL_MAX_BYTES``)."""
    return int(_positive(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, int))


def check_settings() -> None:
    """Raise :class:`InvalidParameterError` naming a URL setting that is not a number > 0
    (once, before any work, rather than on every call)."""
    timeout_s()
    max_bytes()


def _positive(name: str, default: float, kind: type) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if not value > 0:
        raise InvalidParameterError(f"{name} is {raw!r}; expected a number > 0")
    return float(value)


def local_path(text: str) -> str | None:
    """The local path a ``file://`` URL names (``file:///data/a.wav``,
    ``file://localhost/data/a.wav``), or None for any other URL."""
    if url_scheme(text) != "file":
        return None
    parts = urlsplit(text.strip())
    if parts.netloc not in ("", "localhost"):
        return None  # file://otherhost/...: not this machine's; fsspec refuses it too
    return url2pathname(parts.path)  # decodes %20 and the like


def url_problem(url: str) -> str | None:
    """Why ``url`` will not be read (not allowed, carries credentials, needs a library
    this install lacks), or None. The message shows the URL redacted."""
    scheme = url_scheme(url) or ""
    shown = redact_url(url)
    allowed = allowed_schemes()
    if scheme not in allowed:
        return (
            f"audio URL {shown}: scheme '{scheme}:' is not allowed; allowed: "
            f"{', '.join(allowed)} (set {SCHEMES_ENV} to change)"
        )
    found = _credentials_in(url)
    if found:
        return (
            f"audio URL {shown} carries credentials ({'; '.join(found)}); refused: a "
            "manifest never holds credentials, they come from the environment (s3: "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, gs: GOOGLE_APPLICATION_CREDENTIALS)"
        )
    if scheme == "file" and local_path(url) is None:
        return f"audio URL {shown} names another machine; expected file:///path on this one"
    needs = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(scheme)
    if needs and importlib.util.find_spec(needs) is None:
        return (
            f"audio URL {shown}: {scheme}:// needs the {needs} package, which this install "
            f"lacks; install it with `pip install {needs}` (on every worker of a cluster)"
        )
    return None


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as hex: the feature cache key of a recording's content."""
    return hashlib.sha256(data).hexdigest()


# --- reading ---------------------------------------------------------------------------

_FS_LOCK = threading.Lock()
_FILESYSTEMS: dict[tuple[Any, ...], Any] = {}
#: Environment read by the backends for credentials and endpoints: a filesystem is
#: made again when any of it changes (fsspec's own instance cache would keep the old).
_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def _filesystem(scheme: str, timeout: float) -> Any:
    env = tuple(os.environ.get(k) for k in _CREDENTIAL_ENV)
    key = (scheme, timeout, env)
    with _FS_LOCK:
        fs = _FILESYSTEMS.get(key)
        if fs is None:
            fs = _make_filesystem(scheme, timeout)
            _FILESYSTEMS[key] = fs
        return fs


def _make_filesystem(scheme: str, timeout: float) -> Any:
    import fsspec

    options: dict[str, Any] = {"skip_instance_cache": True}
    if scheme in ("http", "https"):
        import aiohttp

        options["client_kwargs"] = {
            "timeout": aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        }
    elif scheme in ("s3", "s3a"):
        # botocore's own retries off: read_url retries a connection error once itself.
        options["config_kwargs"] = {
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "retries": {"max_attempts": 1, "mode": "standard"},
        }
    elif scheme in ("gs", "gcs"):
        options["timeout"] = timeout
    fs = fsspec.filesystem(scheme, **options)
    if scheme in ("s3", "s3a"):
        fs.retries = 2  # s3fs retries its "retryable" errors 5 times by default
    return fs


def read_url(url: str, *, limit: int | None = None) -> bytes:
    """The bytes of the recording at ``url``, read through fsspec.

    Parameters
    ----------
    url : str
        A URL of an allowed scheme without credentials (:func:`url_problem`).
    limit : int or None, keyword-only
        Most bytes to read; None: :func:`max_bytes`.

    Returns
    -------
    bytes

    Raises
    ------
    AudioSourceError
        Not allowed, credentials in the URL, not found, access denied, a connection
        that failed twice or a read beyond the timeout, more than ``limit`` bytes, or an
        empty file. The message names the URL redacted and never the backend's
        traceback.
    """
    problem = url_problem(url)
    if problem:
        raise AudioSourceError(problem)
    cap = max_bytes() if limit is None else limit
    timeout = timeout_s()
    scheme = url_scheme(url) or ""
    shown = redact_url(url)
    for attempt in (1, 2):
        try:
            fs = _filesystem(scheme, timeout)
            data = _read_capped(fs, url, cap, shown)
            break
        except AudioSourceError:
            raise
        except Exception as exc:  # the backends raise their own types: name, don't trace
            err = _cause(exc)
            if isinstance(err, FileNotFoundError):
                raise AudioSourceError(f"audio URL {shown} not found") from None
            if isinstance(err, PermissionError) or getattr(err, "status", None) in (401, 403):
                raise AudioSourceError(
                    f"audio URL {shown}: access denied ({_reason(err, url, shown)}); check "
                    f"the credentials in this process's environment{_credential_hint(scheme)}"
                ) from None
            if _is_timeout(err):
                raise AudioSourceError(
                    f"audio URL {shown}: no answer within {timeout:g} s ({TIMEOUT_ENV})"
                ) from None
            if "NoSuchBucket" in str(err):
                raise AudioSourceError(f"audio URL {shown} not found (no such bucket)") from None
            if _is_connection(err) and attempt == 1:
                continue  # one retry for a dropped or refused connection, no more
            raise AudioSourceError(
                f"audio URL {shown} cannot be read: {_reason(err, url, shown)}"
            ) from None
    if not data:
        raise AudioSourceError(f"audio URL {shown} is empty (0 bytes); expected an audio file")
    return data


def _read_capped(fs: Any, url: str, cap: int, shown: str) -> bytes:
    too_big = (
        f"audio URL {shown} is larger than {cap} bytes, the most read from a URL ({MAX_BYTES_ENV})"
    )
    # One look at the size (HEAD on http, HeadObject on s3): refuse a large file before
    # reading it, and tell open() so that it does not ask again.
    size = fs.info(url).get("size")
    if size is not None and size > cap:
        raise AudioSourceError(too_big)
    chunks: list[bytes] = []
    total = 0
    kwargs: dict[str, Any] = {"size": size} if size else {}
    if url_scheme(url) in ("http", "https"):
        kwargs["block_size"] = 0  # one streamed GET, no range requests
    with fs.open(url, "rb", **kwargs) as fh:
        while total <= cap:  # a server may send more than it announced: stop past cap
            block = fh.read(min(1 << 20, cap + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
    if total > cap:
        raise AudioSourceError(too_big)
    return b"".join(chunks)


def _cause(exc: BaseException) -> BaseException:
    """What really went wrong: fsspec's http info() turns every failure of its HEAD and
    GET (a timeout, a refused connection, a 500) into FileNotFoundError, the cause
    chained; only a 404 or 410 is "not found"."""
    cause = exc.__cause__
    if isinstance(exc, FileNotFoundError) and cause is not None:
        status = getattr(cause, "status", None)
        if status in (404, 410):
            return exc
        return cause
    return exc


def _reason(exc: BaseException, url: str, shown: str) -> str:
    status = getattr(exc, "status", None)
    if isinstance(status, int):  # aiohttp's message repeats the URL: the status says it
        return f"HTTP {status} {getattr(exc, 'message', '')}".strip()
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Backends repeat the URL in their messages: show it redacted, like everywhere.
    return text.replace(url, shown)


def _is_timeout(exc: BaseException) -> bool:
    names = {t.__name__ for t in type(exc).__mro__}
    return isinstance(exc, TimeoutError) or bool(
        names & {"FSTimeoutError", "ServerTimeoutError", "ReadTimeoutError", "ConnectTimeoutError"}
    )


def _is_connection(exc: BaseException) -> bool:
    names = {t.__name__ for t in type(exc).__mro__}
    return isinstance(exc, ConnectionError) or bool(
        names
        & {
            "ClientConnectorError",
            "ClientConnectionError",
            "ServerDisconnectedError",
            "EndpointConnectionError",
            "ConnectionClosedError",
        }
    )


def _credential_hint(scheme: str) -> str:
    if scheme in ("s3", "s3a"):
        return " (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
    if scheme in ("gs", "gcs"):
        return " (GOOGLE_APPLICATION_CREDENTIALS)"
    return ""
