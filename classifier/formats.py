"""What callsift accepts as call audio (docs/data-format.md), in one place.

Both the manifest validator and the audio loader check against these lists; this module
imports nothing so the loader stays free of pandas.
"""

#: Containers read through soundfile.
AUDIO_FORMATS: tuple[str, ...] = ("WAV", "WAVEX", "FLAC", "OGG")
#: Encodings: PCM, float, G.711 mu-law and A-law, and OGG's codecs.
AUDIO_SUBTYPES: tuple[str, ...] = (
    "PCM_16",
    "PCM_24",
    "PCM_32",
    "PCM_U8",
    "PCM_S8",
    "FLOAT",
    "DOUBLE",
    "ULAW",
    "ALAW",
    "VORBIS",
    "OPUS",
)
#: Lowest original rate accepted: below 8 kHz the telephone band is already cut.
MIN_SAMPLE_RATE = 8000
