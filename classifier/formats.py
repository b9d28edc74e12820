"""The fixed vocabularies of callsift's data format (docs/data-format.md), in one place.

The manifest validator, the audio loader, the history features and the simulator all
use these; this module imports nothing, so none of them pulls in pandas through it.
"""

#: Call outcomes, as call-takers record them.
LABELS: tuple[str, ...] = ("emergency", "non_emergency", "prank", "ghost")

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
#: Which side of a recording is the caller: both channels averaged, or one of a stereo pair.
CALLER_CHANNELS: tuple[str, ...] = ("mix", "left", "right")
