"""Indoor backgrounds for the 112 call simulator: crowds, TV / music, room tone, kitchens.

Each generator returns float32 mono audio of exactly ``round(duration_s * sr)`` samples
at an RMS of about 0.05 (see :data:`training.simulator.sounds.BACKGROUNDS`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal

from training.simulator import dsp

__all__ = ["crowd", "kitchen", "room_tone", "tv_or_music"]


# ============================================================================ crowd


def crowd(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    babble: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Crowd murmur: many people talking at once, none intelligible.

    With ``babble`` (speech snippets at ``sr``, e.g. synthesized by the renderer),
    6-16 talkers each string random snippets together with gaps, attenuated and
    time-shifted, muffled by distance and smeared by reverberation, over a faint
    noise murmur. Without it, speech-shaped noise modulated at the syllable rate
    (~4 Hz) by several independent talkspurt patterns.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    babble : sequence of numpy.ndarray or None, keyword-only
        Speech snippets, each float mono of shape (k,), at ``sr``.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    m = max(n, sr // 4)
    murmur = _murmur(rng, m, sr)
    if not babble:
        return dsp.finish(murmur, n)
    clips = [dsp.check_audio(c, "babble snippet") for c in babble]
    clips = [c for c in clips if c.size > sr // 20 and float(np.max(np.abs(c))) > 0]
    if not clips:
        return dsp.finish(murmur, n)
    talk = np.zeros(m, dtype=np.float32)
    for _ in range(int(rng.integers(6, 17))):
        g = float(10.0 ** (rng.uniform(-12.0, 0.0) / 20.0))
        t = int(rng.integers(-sr, sr * 2))
        while t < m:
            c = clips[int(rng.integers(0, len(clips)))]
            c = c / np.float32(float(np.sqrt(np.mean(c.astype(np.float64) ** 2))) + 1e-9)
            a, b = max(t, 0), min(m, t + c.size)
            if b > a:
                talk[a:b] += c[a - t : b - t] * np.float32(g)
            t += c.size + int(rng.uniform(0.1, 1.2) * sr)
    far = dsp.filt(dsp.band(2, 120.0, float(rng.uniform(1500.0, 3000.0)), sr), talk)
    ir = dsp.reverb_ir(rng, sr, float(rng.uniform(0.3, 1.0)), float(rng.uniform(-6.0, 3.0)))
    far = dsp.convolve(far, ir)[:m]
    far *= np.float32(1.0 / (dsp.rms_level(far) + 1e-9))
    murmur *= np.float32(float(rng.uniform(0.1, 0.4)) / (dsp.rms_level(murmur) + 1e-9))
    return dsp.finish(far + murmur, n)


def _murmur(rng: np.random.Generator, m: int, sr: int) -> np.ndarray:
    """Speech-shaped noise, modulated by several talkers' syllable-rate envelopes."""
    factor, nc = dsp.control_grid(m, sr)
    w = dsp.noise(rng, m)
    out = np.zeros(m, dtype=np.float32)
    for g in range(4):
        env = np.zeros(nc)
        for _ in range(int(rng.integers(1, 4))):
            # Talkspurts and pauses, and syllables (3-6 Hz) within them.
            spurt = np.zeros(nc)
            t = int(rng.integers(0, 200))
            while t < nc:
                ln = int(rng.uniform(80, 400))
                spurt[t : t + ln] = 1.0
                t += ln + int(rng.uniform(30, 200))
            syl = dsp.slow_noise(rng, nc, cutoff=float(rng.uniform(4.0, 7.0)))
            syl = np.clip(syl + 0.3, 0.0, None)
            env += scipy.ndimage.uniform_filter1d(spurt, 5) * syl * float(rng.uniform(0.4, 1.0))
        shift = int(rng.integers(0, m))
        out += dsp.mul_ramp(np.roll(w, shift) if g else w.copy(), env, factor)
    # Long-term speech spectrum: peak near 500 Hz, falling above 1 kHz.
    lo = float(rng.uniform(120.0, 250.0))
    sos = np.vstack(
        [
            dsp.band(2, lo, sr, sr),
            dsp.band(1, 0.0, float(rng.uniform(900.0, 2000.0)), sr),
            dsp.resonator_sos(float(rng.uniform(400.0, 700.0)), 400.0, sr) * [0.3, 1, 1, 1, 1, 1],
        ]
    ).astype(np.float32)
    return dsp.filt(sos, out)


# ============================================================================ TV / music

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def tv_or_music(
    rng: np.random.Generator,
    *,
    duration_s: float,
    sr: int = 8000,
    speech: np.ndarray | None = None,
) -> np.ndarray:
    """A TV or radio playing in the room: music, speech, or speech over music.

    Music is synthesized in bars: a chord progression (often minor, dangdut-like at
    110-140 BPM, or a slower pop song) with plucked bass, strummed or held chords, a
    kendang-style drum pattern (low "dhut", slap "tak", shaker) and sometimes a suling
    or vocal-like melody with vibrato. ``speech`` (the renderer's synthesized speech)
    becomes TV dialogue. Everything plays through a small loudspeaker (band-limited)
    into a reverberant room.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.
    speech : numpy.ndarray or None, keyword-only
        TV speech, float mono of shape (k,) at ``sr``; repeated with gaps if short.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    m = max(n, sr // 4)
    sp = dsp.check_audio(speech, "speech") if speech is not None else None
    has_speech = sp is not None and sp.size > 0 and float(np.max(np.abs(sp))) > 0
    mode = "music"
    if has_speech:
        mode = "speech" if rng.random() < 0.6 else "both"
    rt60 = float(rng.uniform(0.25, 0.8))
    speaker = np.vstack(
        [
            dsp.band(2, float(rng.uniform(120.0, 300.0)), sr, sr),
            dsp.band(2, 0.0, float(rng.uniform(2800.0, 3900.0)), sr),
        ]
    )
    out = np.zeros(m, dtype=np.float32)
    if mode in ("music", "both"):
        music = _music(rng, m, sr, rt60=rt60)
        if mode == "both":
            music *= np.float32(10.0 ** (rng.uniform(-15.0, -6.0) / 20.0))
        out += music
    if has_speech and sp is not None:
        dialog = np.zeros(m, dtype=np.float32)
        sp = sp / np.float32(float(np.sqrt(np.mean(sp.astype(np.float64) ** 2))) + 1e-9)
        t = int(rng.integers(0, max(1, min(sp.size, m) // 4)))
        t = -t if rng.random() < 0.5 else t
        while t < m:
            a, b = max(t, 0), min(m, t + sp.size)
            if b > a:
                dialog[a:b] += sp[a - t : b - t]
            t += sp.size + round(float(rng.uniform(0.2, 1.0)) * sr)
        ir = dsp.reverb_ir(rng, sr, rt60, float(rng.uniform(0.0, 8.0)))
        dialog = dsp.convolve(dsp.filt(speaker, dialog), ir)[:m]
        # TV audio is compressed: tame the peaks a little.
        dialog = np.tanh(dialog * np.float32(0.5)) * np.float32(2.0)
        out += dialog * np.float32(1.0 / (dsp.rms_level(dialog) + 1e-9))
    return dsp.finish(out, n)


def _music(rng: np.random.Generator, m: int, sr: int, *, rt60: float) -> np.ndarray:
    """Synthesized music bars (already through speaker and room), tiled to m samples."""
    dangdut = rng.random() < 0.7
    bpm = float(rng.uniform(110.0, 140.0) if dangdut else rng.uniform(72.0, 110.0))
    beat = 60.0 / bpm
    # A bar length with small prime factors keeps the per-bar FFTs fast.
    bar_len = scipy.fft.next_fast_len(round(4 * beat * sr), real=True)
    beat = bar_len / (4.0 * sr)
    minor = dangdut or rng.random() < 0.4
    scale = _MINOR if minor else _MAJOR
    root = int(rng.integers(50, 60))  # MIDI note of the key's tonic (D3..B3)
    progs = [(0, 3, 4, 0), (0, 5, 6, 0), (0, 3, 0, 4)] if minor else [(0, 4, 5, 3), (0, 3, 4, 0)]
    prog = progs[int(rng.integers(0, len(progs)))]
    chord_tab = dsp.wavetable(rng.uniform(0.1, 1.0, size=6) / np.arange(1, 7), 1024)
    bass_tab = dsp.wavetable([1.0, 0.5, 0.3, 0.1], 1024)
    mel_tab = dsp.wavetable(
        [1.0, 0.3, 0.15, 0.05] if rng.random() < 0.5 else [1.0, 0.6, 0.4, 0.3, 0.2], 1024
    )
    held = rng.random() < 0.4  # organ-like held chords instead of strums
    melody = rng.random() < 0.6
    pattern = _drum_pattern(rng) if (dangdut or rng.random() < 0.5) else None
    shaker = rng.random() < 0.6
    speaker = np.vstack(
        [
            dsp.band(2, float(rng.uniform(120.0, 300.0)), sr, sr),
            dsp.band(2, 0.0, float(rng.uniform(2800.0, 3900.0)), sr),
        ]
    )
    ir = dsp.reverb_ir(rng, sr, rt60, float(rng.uniform(0.0, 8.0)))
    ir_f = scipy.fft.rfft(ir, bar_len) if ir.size <= bar_len else scipy.fft.rfft(ir[:bar_len])
    bars: list[np.ndarray] = []
    for variant in range(2):
        for deg in prog:
            bar = _music_bar(
                rng,
                bar_len,
                sr,
                beat=beat,
                chord=[root + scale[(deg + k) % 7] + 12 * ((deg + k) // 7) for k in (0, 2, 4)],
                scale=[root + s for s in scale],
                tabs=(chord_tab, bass_tab, mel_tab),
                held=held,
                melody=melody and variant == 1,
                pattern=pattern,
                shaker=shaker,
            )
            bar = dsp.filt(speaker, bar)
            # Circular reverb: the bar's tail wraps into its own start (bars repeat).
            bar = scipy.fft.irfft(scipy.fft.rfft(bar) * ir_f, bar_len).astype(np.float32)
            bars.append(bar)
    # Song form: verse (plain) and chorus (with melody) sections of 2-4 passes.
    seq: list[int] = []
    variant = int(rng.integers(0, 2))
    offset = int(rng.integers(0, bar_len * len(prog)))
    while len(seq) * bar_len < m + offset:
        reps = int(rng.integers(2, 5))
        for _ in range(reps):
            seq.extend(variant * len(prog) + i for i in range(len(prog)))
        variant = 1 - variant
    track = np.concatenate([bars[i] for i in seq])[offset : offset + m]
    return track


def _drum_pattern(rng: np.random.Generator) -> list[tuple[int, str]]:
    """Eighth-note kendang pattern over one bar: (position 0-7, stroke)."""
    options = [
        [(0, "dhut"), (3, "dhut"), (4, "tak"), (6, "dhut"), (7, "tak")],
        [(0, "dhut"), (2, "tak"), (3, "dhut"), (4, "dhut"), (6, "tak")],
        [(0, "dhut"), (1, "tung"), (3, "dhut"), (4, "tak"), (5, "tung"), (6, "tak")],
        [(0, "dhut"), (2, "tak"), (4, "dhut"), (6, "tak")],
    ]
    return options[int(rng.integers(0, len(options)))]


def _music_bar(
    rng: np.random.Generator,
    bar_len: int,
    sr: int,
    *,
    beat: float,
    chord: list[int],
    scale: list[int],
    tabs: tuple[np.ndarray, np.ndarray, np.ndarray],
    held: bool,
    melody: bool,
    pattern: list[tuple[int, str]] | None,
    shaker: bool,
) -> np.ndarray:
    chord_tab, bass_tab, mel_tab = tabs
    bar = np.zeros(bar_len, dtype=np.float32)
    t = np.arange(bar_len, dtype=np.float32) / np.float32(sr)

    def hz(midi: float) -> float:
        return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)

    def note(
        tab: np.ndarray, midi: float, start: float, length: float, decay: float, g: float
    ) -> None:
        s0 = round(start * sr)
        ln = min(round(length * sr), bar_len - s0)
        if ln <= 8:
            return
        tt = t[:ln]
        env = np.minimum(1.0, tt / 0.005) * np.exp(-tt / decay)
        bar[s0 : s0 + ln] += (
            dsp.tone(tab, hz(midi), ln, sr, float(rng.random())) * env * np.float32(g)
        )

    # Bass on beats 1 and 3 (and a pickup), chords held or strummed on off-beats.
    for b in (0, 2):
        note(bass_tab, chord[0] - 12, b * beat, 1.5 * beat, 0.35, 0.8)
    if rng.random() < 0.5:
        note(bass_tab, chord[2] - 12, 3.5 * beat, 0.5 * beat, 0.2, 0.5)
    if held:
        for k in chord:
            note(chord_tab, k, 0.0, 4 * beat, 3.0, 0.25)
    else:
        for half in (1, 3, 5, 7):
            for j, k in enumerate(chord):
                note(chord_tab, k + 12, half * beat / 2 + 0.012 * j, beat, 0.15, 0.22)
    if melody:
        pos = 0.0
        while pos < 4 * beat - 0.1:
            length = beat * float(rng.choice([0.5, 1.0, 1.5, 2.0]))
            midi = scale[int(rng.integers(0, 7))] + 12
            s0 = round(pos * sr)
            ln = min(round(length * sr), bar_len - s0)
            if ln > 8:
                tt = t[:ln]
                vib = hz(midi) * (1.0 + 0.012 * np.sin(2 * np.pi * 5.5 * tt))
                env = np.minimum(1.0, tt / 0.04) * np.minimum(1.0, (tt[-1] - tt) / 0.04 + 0.05)
                bar[s0 : s0 + ln] += dsp.tone(mel_tab, vib, ln, sr) * env * np.float32(0.35)
            pos += length
    if pattern:
        for slot, stroke in pattern:
            s0 = round(slot * beat / 2 * sr)
            ln = min(round(0.18 * sr), bar_len - s0)
            if ln <= 8:
                continue
            tt = t[:ln]
            if stroke in ("dhut", "tung"):
                f0 = 95.0 if stroke == "dhut" else 220.0
                f = f0 * (1.0 + 0.6 * np.exp(-tt / 0.02))
                ph = 2 * np.pi * np.cumsum(f) / sr
                bar[s0 : s0 + ln] += (np.sin(ph) * np.exp(-tt / 0.09) * 0.9).astype(np.float32)
            else:  # slap: a short bright noise burst
                burst = dsp.filt(dsp.band(2, 900.0, 3000.0, sr), dsp.noise(rng, ln), dense=True)
                bar[s0 : s0 + ln] += burst * np.exp(-tt / 0.03) * np.float32(0.5)
    if shaker:
        starts = np.round(np.arange(8) * beat / 2 * sr).astype(np.int64)
        ln = round(0.05 * sr)
        env = np.exp(-np.arange(ln) / (0.012 * sr))
        tmpl = dsp.noise(rng, 8 * ln).reshape(8, ln) * env * 0.12
        tmpl[::2] *= 0.6
        hp = dsp.filt(dsp.band(2, 2500.0, sr, sr), tmpl.ravel().astype(np.float32)).reshape(8, ln)
        dsp.scatter(bar_len, starts, hp, out=bar)
    return bar


# ============================================================================ room tone, kitchen


def room_tone(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """A quiet room: air conditioning / fan noise, mains hum and buzz, maybe a clock.

    HVAC noise (pink, low-passed at 300-1200 Hz, slowly fluctuating), often with a
    fan's blade tone, 50 Hz hum with strong 100-300 Hz harmonics (transformers,
    fluorescent lamps), and sometimes a ticking clock.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    m = max(n, sr // 4)
    factor, nc = dsp.control_grid(m, sr)
    sway = 1.0 + 0.12 * dsp.slow_noise(rng, nc, cutoff=float(rng.uniform(0.05, 0.3)))
    hvac = dsp.filt(
        np.vstack([dsp.pink_sos(sr), dsp.band(2, 0.0, float(rng.uniform(300.0, 1200.0)), sr)]),
        dsp.noise(rng, m),
        dense=True,
    ) * dsp.upsample(sway, factor, m)
    hvac *= np.float32(1.0 / (dsp.rms_level(hvac) + 1e-9))
    out = hvac
    # One second of periodic sounds (whole cycles), tiled seamlessly.
    t = np.arange(sr) / sr
    block = np.zeros(sr)
    if rng.random() < 0.7:  # mains hum and buzz
        k = np.arange(1, 13)
        amp = rng.uniform(0.0, 1.0, size=k.size) * k ** -float(rng.uniform(0.3, 1.2))
        amp[1] += float(rng.uniform(0.5, 1.5))  # 100 Hz magnetostriction
        ph = rng.uniform(0, 2 * np.pi, size=k.size)
        block += (amp[:, None] * np.sin(2 * np.pi * 50 * k[:, None] * t + ph[:, None])).sum(0)
        block *= 10.0 ** (rng.uniform(-20.0, -6.0) / 20.0) / (dsp.rms_level(block) + 1e-9)
    if rng.random() < 0.4:  # fan blade tone
        f = int(rng.integers(60, 240))
        fan = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(2 * np.pi * 2 * f * t + 1.0)
        block += fan * 10.0 ** (rng.uniform(-22.0, -10.0) / 20.0)
    if block.any():
        out = out + np.resize(np.roll(block, int(rng.integers(0, sr))).astype(np.float32), m)
    if rng.random() < 0.15:  # a ticking clock
        ticks = np.arange(float(rng.uniform(0.0, 1.0)), m / sr, 1.0)
        ln = round(0.01 * sr)
        tmpl = dsp.noise(rng, ticks.size * ln).reshape(-1, ln) * np.exp(
            -np.arange(ln) / (0.002 * sr)
        )
        tick = dsp.filt(dsp.band(2, 1500.0, 3500.0, sr), tmpl.ravel().astype(np.float32)).reshape(
            -1, ln
        )
        dsp.scatter(
            m,
            np.round(ticks * sr).astype(np.int64),
            tick * np.float32(rng.uniform(1.0, 4.0)),
            out=out,
        )
    return dsp.finish(out, n)


def kitchen(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """A kitchen: clinking dishes and cutlery, running water, pots knocked.

    Clinks are 2-4 inharmonic partials (1-3.8 kHz) decaying in 50-400 ms, sometimes
    in quick pairs; the tap runs for a while now and then (band noise with bubbly
    modulation and small rising bubble chirps); low knocks of pots.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice.
    duration_s : float, keyword-only
        Length in seconds.
    sr : int, keyword-only, default 8000
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        float32, shape (round(duration_s * sr),), RMS about 0.05.
    """
    dsp.check_rng(rng)
    n = dsp.n_samples(duration_s, sr)
    m = max(n, sr // 4)
    dur = m / sr
    out = dsp.filt(dsp.band(2, 0.0, 400.0, sr), dsp.noise(rng, m, 0.02), dense=True)  # faint bed
    nyq = 0.47 * sr
    # Clinks.
    times = dsp.poisson_times(rng, float(rng.uniform(0.1, 0.7)), dur)
    if dur < 5:
        times = np.append(times, rng.uniform(0.0, dur * 0.8))
    ln = round(0.4 * sr)
    tt = np.arange(ln) / sr
    for t0 in times:
        parts = int(rng.integers(2, 5))
        f = float(rng.uniform(1000.0, 2600.0)) * np.array([1.0, 2.76, 5.40, 8.93])[:parts]
        f *= rng.uniform(0.97, 1.03, size=parts)
        tau = rng.uniform(0.05, 0.4, size=parts) / np.arange(1, parts + 1)
        amp = rng.uniform(0.3, 1.0, size=parts) * (f < nyq)
        s = (amp[:, None] * np.sin(2 * np.pi * f[:, None] * tt) * np.exp(-tt / tau[:, None])).sum(0)
        g = float(rng.uniform(0.2, 1.0))
        for echo in range(1 if rng.random() < 0.7 else 2):
            s0 = round((t0 + echo * float(rng.uniform(0.05, 0.15))) * sr)
            if s0 < m:
                k = min(ln, m - s0)
                out[s0 : s0 + k] += (s[:k] * g * (0.6 if echo else 1.0)).astype(np.float32)
    # Pots and pans knocked.
    for t0 in dsp.poisson_times(rng, float(rng.uniform(0.0, 0.15)), dur):
        s0 = round(t0 * sr)
        k = min(round(0.3 * sr), m - s0)
        tk = np.arange(k) / sr
        fk = float(rng.uniform(150.0, 500.0))
        knock = np.sin(2 * np.pi * fk * tk) * np.exp(-tk / 0.08) + 0.5 * np.sin(
            2 * np.pi * fk * 2.3 * tk
        ) * np.exp(-tk / 0.04)
        out[s0 : s0 + k] += (knock * float(rng.uniform(0.3, 1.0))).astype(np.float32)
    # Running water.
    t = float(rng.uniform(0.0, min(dur, 10.0)))
    while t < dur and rng.random() < 0.8:
        length = float(rng.uniform(2.0, 12.0))
        s0, s1 = round(t * sr), min(m, round((t + length) * sr))
        k = s1 - s0
        if k > sr // 10:
            factor = max(1, round(sr / 400))
            bub = np.exp(0.6 * dsp.slow_noise(rng, k // factor + 2, cutoff=40.0, rate=400.0))
            ramp = np.minimum(1.0, np.minimum(np.arange(k), k - np.arange(k)) / (0.1 * sr))
            lo, hi = float(rng.uniform(300.0, 700.0)), float(rng.uniform(2000.0, 3800.0))
            water = dsp.mul_ramp(
                dsp.filt(dsp.band(2, lo, hi, sr), dsp.noise(rng, k), dense=True), bub, factor
            )
            water *= (ramp * float(rng.uniform(0.3, 0.8))).astype(np.float32)
            # Bubbles: short rising chirps.
            nb = int(rng.poisson(float(rng.uniform(20.0, 80.0)) * k / sr))
            bl = round(0.02 * sr)
            tb = np.arange(bl) / sr
            f0 = rng.uniform(400.0, 1500.0, size=(nb, 1))
            chirp = np.sin(2 * np.pi * f0 * tb * (1.0 + 12.0 * tb)) * np.exp(-tb / 0.006)
            chirp *= rng.uniform(0.05, 0.3, size=(nb, 1))
            water = dsp.scatter(k, rng.integers(0, k, size=nb), chirp.astype(np.float32), out=water)
            out[s0:s1] += water
        t += length + float(rng.uniform(3.0, 20.0))
    return dsp.finish(out, n)
