"""Headerless telephone audio named by its media type (RFC 3551, RFC 4856, RFC 2586).

Telephone systems send a call's samples without a file header: G.711 as ``audio/PCMU``
and ``audio/PCMA`` (RTP payloads; ``audio/x-mulaw`` in Twilio's and others' media
streams), 16-bit linear PCM as ``audio/L16;rate=...`` in network byte order. The media
type carries what a header would: the encoding, the rate and the channels.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException

from classifier.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

__all__ = ["HEADERLESS_TYPES", "Headerless", "headerless_type"]


@dataclass(frozen=True)
class _Type:
    encoding: str  # libsndfile's name
    default_rate: int | None  # None: the rate parameter is required
    big_endian: bool


#: Media types of headerless audio, lower case. ``audio/basic`` is 8 kHz mono mu-law
#: (RFC 2046) unless the bytes are an AU file, as many servers label those.
HEADERLESS_TYPES: dict[str, _Type] = {
    "audio/pcmu": _Type("ULAW", 8000, False),
    "audio/x-mulaw": _Type("ULAW", 8000, False),
    "audio/mulaw": _Type("ULAW", 8000, False),
    "audio/basic": _Type("ULAW", 8000, False),
    "audio/pcma": _Type("ALAW", 8000, False),
    "audio/x-alaw": _Type("ALAW", 8000, False),
    "audio/alaw": _Type("ALAW", 8000, False),
    "audio/l16": _Type("PCM_16", None, True),
}


@dataclass(frozen=True)
class Headerless:
    """How to read a headerless body: :func:`classifier.audio.headerless_wav`'s arguments."""

    media: str
    encoding: str
    sample_rate: int
    channels: int
    big_endian: bool


def _params(content_type: str) -> tuple[str, dict[str, str]]:
    """The media type as sent (matched in lower case) and its parameters."""
    media, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            params[key.strip().lower()] = value.strip().strip('"')
    return media.strip(), params


def _whole(media: str, name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type {media} has {name}={text!r}; expected a whole number "
            f"from {low} to {high}",
        )
    return int(text)


def headerless_type(content_type: str, head: bytes = b"") -> Headerless | None:
    """How to read a body of ``content_type``, or None for a file with its own header.

    ``head``: the body's first bytes, to tell an AU file labelled ``audio/basic`` from
    headerless mu-law. A type of :data:`HEADERLESS_TYPES` with a bad ``rate`` or
    ``channels`` parameter, or ``audio/L16`` without a rate, is refused (415) naming it.
    """
    media, params = _params(content_type)
    kind = HEADERLESS_TYPES.get(media.lower())
    if kind is None or (media.lower() == "audio/basic" and head.startswith(b".snd")):
        return None
    if "rate" in params:
        rate = _whole(media, "rate", params["rate"], MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    elif kind.default_rate is not None:
        rate = kind.default_rate
    else:
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type {media} has no rate parameter; headerless 16-bit PCM needs "
            "one (RFC 2586), e.g. audio/L16;rate=8000",
        )
    channels = _whole(media, "channels", params.get("channels", "1"), 1, 2)
    return Headerless(media, kind.encoding, rate, channels, kind.big_endian)
