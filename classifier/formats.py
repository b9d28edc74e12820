"""The fixed vocabularies of callsift's data format (docs/data-format.md), in one place.

The manifest validator, the audio loader, the history features and the simulator all
use these; this module imports nothing, so none of them pulls in pandas through it.
"""

#: Call outcomes, as call-takers record them.
LABELS: tuple[str, ...] = ("emergency", "non_emergency", "prank", "ghost")

#: Containers read through soundfile. Besides WAV, FLAC and Ogg, the ones call recorders
#: and telephone switches export: MP3, Sun/NeXT AU, AIFF / AIFF-C, and the 64-bit WAVs
#: (RF64, Sony Wave64) of long recordings.
AUDIO_FORMATS: tuple[str, ...] = ("WAV", "WAVEX", "FLAC", "OGG", "MP3", "AU", "AIFF", "RF64", "W64")
#: Encodings: PCM, float, G.711 mu-law and A-law, Ogg's codecs, MPEG audio, and the
#: telephone codecs recorders store in WAV or AU (GSM 6.10, IMA and Microsoft ADPCM,
#: G.721 and G.723 ADPCM).
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
    "MPEG_LAYER_I",
    "MPEG_LAYER_II",
    "MPEG_LAYER_III",
    "GSM610",
    "IMA_ADPCM",
    "MS_ADPCM",
    "G721_32",
    "G723_24",
    "G723_40",
)
#: Lowest original rate accepted: below 8 kHz the telephone band is already cut.
MIN_SAMPLE_RATE = 8000
#: Which side of a recording is the caller: both channels averaged, or one of a stereo pair.
CALLER_CHANNELS: tuple[str, ...] = ("mix", "left", "right")
