"""Speech activity detection for telephone audio.

The detector was chosen by measurement (``bench/vad_compare.py``, results in
``docs/vad.md``): pocket-dial handling noise (rub, tap, friction) and kitchen clatter must
not count as speech, quiet speech must, and it must run on the STFT the feature
extractor already computes (``n_fft=256, hop_length=80`` at 8 kHz).

Per 10 ms frame of a 32 ms Hann STFT:

1. energy in 300-3400 Hz relative to an adaptive floor (a running morphological opening
   of the energy track, so bursts shorter than ~1.5 s do not raise it);
2. periodicity: the normalised autocorrelation peak at pitch lags (75-400 Hz), computed
   from the noise-subtracted 100-1800 Hz power spectrum (Wiener-Khinchin: no extra FFT);
3. voiced nuclei: periodic frames well above the floor whose pitch lag stays steady over
   at least 30 ms (noise reaches high single-frame peaks too, but at random lags);
   whisper nuclei: >= 150 ms of energy above the floor with a formant-like (non-flat,
   low-weighted) spectrum;
4. above-floor frames within 100 ms of a nucleus join it (unvoiced consonants), gaps
   shorter than 200 ms are closed and a 30 ms hangover is added.

Rub, tap and clatter rise above the floor but are neither steadily periodic nor
formant-shaped for long, so they are rejected; quiet voiced speech stays periodic far
below the clatter level, and the decision depends on levels only relative to the floor
(gain-invariant down to -80 dBFS band energy).


The detector is :mod:`~classifier.vad.detector`; the noise floor and noise spectrum it
measures against are in :mod:`~classifier.vad.noise`, its compiled 1-D morphology in
:mod:`~classifier.vad.morphology`, and what a live stream keeps between updates in
:mod:`~classifier.vad.state`.
"""

from classifier.constants import N_FFT
from classifier.vad.detector import (
    speech_activity,
    speech_activity_from_stft,
    speech_and_whisper_from_stft,
    speech_segments,
    stft_magnitude,
)
from classifier.vad.state import VadMemo, grow_rows

__all__ = [
    "N_FFT",
    "VadMemo",
    "grow_rows",
    "speech_activity",
    "speech_activity_from_stft",
    "speech_and_whisper_from_stft",
    "speech_segments",
    "stft_magnitude",
]
