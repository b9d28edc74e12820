"""Signal constants the features and the speech detector share, each defined once."""

from __future__ import annotations

#: Sample rate (Hz) of every feature and of the speech detector.
SR = 8000
#: STFT window in samples (32 ms at 8 kHz), of the features and of the speech detector.
N_FFT = 256
#: STFT hop in samples (10 ms at 8 kHz).
HOP = 80
#: The telephone band (Hz). Below it a line carries only hum, codec and recorder
#: artefacts, whose level moves with the recording gain and the equipment, not with the
#: caller; above it, little of the voice.
TELEPHONE_BAND_HZ: tuple[float, float] = (300.0, 3400.0)
#: Added before a log or a division, so that silence gives a finite value.
EPS = 1e-10
