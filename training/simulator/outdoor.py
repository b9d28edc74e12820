"""Outdoor backgrounds for the 112 call simulator: wind, traffic, rain and sirens.

Each generator has the uniform signature ``(rng, *, duration_s, sr) -> ndarray`` of
:data:`training.simulator.sounds.BACKGROUNDS` and returns float32 mono audio of exactly
``round(duration_s * sr)`` samples at an RMS of about 0.05.
"""

from __future__ import annotations

import numpy as np

from training.simulator import dsp

__all__ = ["rain", "siren", "traffic", "wind"]


# ============================================================================ wind


def wind(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Wind on a phone microphone: low turbulent rumble with slow gusts and buffeting.

    Low-passed noise (150-500 Hz corner) amplitude-modulated by log-normal gusts with
    0.1-1 Hz variation, a brighter whoosh that grows with gust strength, and strong
    gusts overloading the mic (soft-clipped low-frequency bursts).

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
    gust_hz = float(rng.uniform(0.1, 1.0))
    gusts = np.exp(float(rng.uniform(0.4, 0.9)) * dsp.slow_noise(rng, nc, cutoff=gust_hz))
    # Fast flutter on top: turbulence at the mic port.
    flutter = 1.0 + 0.3 * dsp.slow_noise(rng, nc, cutoff=float(rng.uniform(3.0, 10.0)))
    g_ctrl = gusts * np.clip(flutter, 0.2, None)
    g = dsp.upsample(g_ctrl, factor, m)
    w = dsp.noise(rng, m)
    rumble = dsp.filt(dsp.band(4, 0.0, float(rng.uniform(120.0, 400.0)), sr), w, dense=True)
    rumble *= np.float32(1.0 / (dsp.rms_level(rumble) + 1e-12))
    # The time-reversed noise is independent enough for a different band.
    whoosh = dsp.filt(
        dsp.band(2, float(rng.uniform(250.0, 500.0)), float(rng.uniform(800.0, 2000.0)), sr),
        w[::-1],
        dense=True,
    )
    out = rumble * g
    whoosh *= dsp.upsample(g_ctrl**1.6, factor, m)  # stronger gusts sound brighter
    whoosh *= np.float32(
        10.0 ** (rng.uniform(-22.0, -12.0) / 20.0)
        * dsp.rms_level(out)
        / (dsp.rms_level(whoosh) + 1e-12)
    )
    out += whoosh
    # Buffeting: the strongest gusts overload the capsule.
    thr = float(np.quantile(g_ctrl, float(rng.uniform(0.6, 0.9))))
    over_ctrl = np.clip(g_ctrl - thr, 0.0, None) ** 2
    if float(over_ctrl.max()) > 0:
        over = dsp.upsample(over_ctrl / float(over_ctrl.max()), factor, m)
        drive = np.float32(rng.uniform(0.5, 2.0))
        buffet = np.tanh(rumble * over * drive)
        out += buffet * np.float32(dsp.rms_level(out) * float(rng.uniform(0.5, 2.0)))
    return dsp.finish(out, n)


# ============================================================================ traffic


def traffic(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """A street: road rumble, idling engines, passing cars and motorbikes, horns.

    A brown/pink rumble bed; vehicles (mostly motorbikes, as on Indonesian streets)
    pass at random, each a swelling broadband tyre noise that brightens as it comes
    close and an engine buzz whose pitch drops as it passes (Doppler); horns
    sometimes ("tin-tin" of a motorbike, two-tone car horns).

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
    factor, nc = dsp.control_grid(m, sr)
    tc = np.arange(nc) / 100.0
    busy = float(rng.uniform(3.0, 25.0))  # vehicles per minute
    # Some vehicle is always near the start of a short clip.
    n_veh = int(rng.poisson(busy * (dur + 12.0) / 60.0)) + (1 if dur < 10 else 0)
    t0 = rng.uniform(-6.0, dur + 6.0, size=n_veh)
    if dur < 10 and n_veh:
        t0[0] = float(rng.uniform(0.0, dur))
    speed = rng.uniform(6.0, 18.0, size=n_veh)
    dist = rng.uniform(3.0, 25.0, size=n_veh)
    loud = rng.uniform(0.5, 1.5, size=n_veh) * (3.0 / dist) ** 0.3
    bike = rng.random(n_veh) < 0.6
    e_low = np.full(nc, float(rng.uniform(0.15, 0.5)))  # the bed
    e_low *= np.exp(0.2 * dsp.slow_noise(rng, nc, cutoff=0.05))
    e_mid = np.zeros(nc)
    hum = np.zeros(m, dtype=np.float32)
    saw = dsp.wavetable([1.0 / k for k in range(1, 25)], 1024)
    for i in range(n_veh):
        x_rel = speed[i] * (tc - t0[i])
        r2 = dist[i] ** 2 + x_rel**2
        bell = dist[i] ** 2 / r2  # intensity relative to closest approach
        e_low += loud[i] * np.sqrt(bell)
        e_mid += loud[i] * bell
        # Engine buzz of the nearer vehicles over +-2.5 s around the closest approach,
        # with Doppler; pitch and level at 1 kHz, interpolated.
        if dist[i] > 12.0:
            continue
        a, b = max(0.0, t0[i] - 2.5), min(dur, t0[i] + 2.5)
        s0, s1 = round(a * sr), round(b * sr)
        if s1 - s0 < 16:
            continue
        fac = max(1, round(sr / 1000))
        ts = s0 / sr + np.arange(-(-(s1 - s0) // fac) + 1) * (fac / sr)
        xr = speed[i] * (ts - t0[i])
        v_rad = speed[i] * xr / np.sqrt(dist[i] ** 2 + xr**2)  # > 0 moving away
        f_base = float(rng.uniform(70.0, 180.0) if bike[i] else rng.uniform(30.0, 80.0))
        # The driver works the throttle: engine speed wanders by ~10 %.
        f_eng = f_base * (1.0 + 0.1 * np.sin(2 * np.pi * float(rng.uniform(0.1, 0.4)) * ts))
        freq = f_eng * dsp.SPEED_OF_SOUND / (dsp.SPEED_OF_SOUND + v_rad)
        env = np.sqrt(dist[i] ** 2 / (dist[i] ** 2 + xr**2)) * loud[i] * 0.5
        ph = dsp.phase(freq, fac, s1 - s0, sr)
        ph += np.float32(rng.random())
        idx = (ph * np.float32(saw.size)).astype(np.intp) % saw.size
        hum[s0:s1] += saw[idx] * dsp.upsample(env, fac, s1 - s0)
    w = dsp.noise(rng, m)
    low = w * dsp.upsample(e_low, factor, m) + hum
    rumble = dsp.filt(
        np.vstack([dsp.band(2, 0.0, float(rng.uniform(250.0, 600.0)), sr), dsp.pink_sos(sr)]),
        low,
        dense=True,
    )
    tyre = dsp.filt(
        dsp.band(2, float(rng.uniform(400.0, 700.0)), float(rng.uniform(1800.0, 3500.0)), sr),
        w[::-1] * dsp.upsample(e_mid, factor, m),
        dense=True,
    )
    out = rumble * np.float32(4.0) + tyre * np.float32(rng.uniform(0.3, 0.8))
    # Horns, now and then.
    n_horn = int(rng.poisson(rng.uniform(0.0, 3.0) * dur / 60.0))
    ref = dsp.rms_level(out) + 1e-6
    for _ in range(n_horn):
        beeps = int(rng.integers(1, 4))
        start = float(rng.uniform(0.0, dur))
        two_tone = rng.random() < 0.5
        f1 = float(rng.uniform(380.0, 480.0) if two_tone else rng.uniform(300.0, 650.0))
        g = ref * float(rng.uniform(0.5, 2.0))
        for _b in range(beeps):
            ln = round(float(rng.uniform(0.12, 0.6)) * sr)
            s0 = round(start * sr)
            if s0 + 8 >= m:
                break
            ln = min(ln, m - s0)
            tt = np.arange(ln) / sr
            tone = np.tanh(3.0 * np.sin(2 * np.pi * f1 * tt))
            if two_tone:
                tone += np.tanh(3.0 * np.sin(2 * np.pi * f1 * 1.26 * tt))
            fade = np.minimum(1.0, np.minimum(tt, tt[-1] - tt) / 0.01)
            out[s0 : s0 + ln] += (tone * fade * g).astype(np.float32)
            start += ln / sr + float(rng.uniform(0.05, 0.2))
    return dsp.finish(out, n)


# ============================================================================ rain


def rain(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """Rain: a pink noise bed with dense random drop clicks, intensity varying slowly.

    Drops land at 100-1500 per second with heavy-tailed sizes, each a short decaying
    click coloured by the surface (roof, umbrella, street); sometimes a gutter drips
    steadily or thunder rolls in the distance.

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
    factor, nc = dsp.control_grid(m, sr)
    intensity = np.exp(0.3 * dsp.slow_noise(rng, nc, cutoff=float(rng.uniform(0.02, 0.2))))
    inten = dsp.upsample(intensity, factor, m)
    rate = float(rng.uniform(100.0, 1500.0))
    k = int(rng.poisson(rate * dur))
    pos = rng.integers(0, m, size=k)
    # Heavy-tailed drop sizes, capped: a few big drops, no single one dominating.
    size = np.minimum(rng.pareto(1.8, size=k) + 0.3, 12.0) * rng.choice([-1.0, 1.0], size=k)
    drops = np.bincount(pos, weights=size, minlength=m)[:m].astype(np.float32)
    if rng.random() < 0.3:  # a gutter dripping steadily nearby
        period = float(rng.uniform(0.25, 1.0))
        drip_t = np.arange(float(rng.uniform(0, period)), dur, period)
        drip_t += rng.normal(0.0, 0.02, size=drip_t.size)
        ok = (drip_t >= 0) & (drip_t < dur)
        drops[(drip_t[ok] * sr).astype(np.int64)] += np.float32(rng.uniform(5.0, 12.0))
    lo = float(rng.uniform(600.0, 1500.0))
    click = dsp.filt(dsp.band(2, lo, min(lo * float(rng.uniform(2.0, 4.0)), 0.45 * sr), sr), drops)
    bed = dsp.filt(
        np.vstack([dsp.pink_sos(sr), dsp.band(2, float(rng.uniform(100.0, 300.0)), sr, sr)]),
        dsp.noise(rng, m),
        dense=True,
    )
    # Drops to bed level ratio: light rain on a roof is clicky, a downpour a hiss.
    click_db = float(rng.uniform(-8.0, 4.0))
    click *= np.float32(
        10.0 ** (click_db / 20.0) / (dsp.rms_level(click) + 1e-12) * (dsp.rms_level(bed) + 1e-12)
    )
    out = (bed + click) * inten
    if dur > 15 and rng.random() < 0.15:  # distant thunder
        ln = min(round(float(rng.uniform(2.0, 6.0)) * sr), m)
        s0 = int(rng.integers(0, m - ln + 1))
        tt = np.arange(ln) / sr
        env = (1.0 - np.exp(-tt / 0.3)) * np.exp(-tt / float(rng.uniform(0.8, 2.0)))
        th = dsp.filt(dsp.band(2, 0.0, 200.0, sr), dsp.noise(rng, ln), dense=True) * env.astype(
            np.float32
        )
        out[s0 : s0 + ln] += th * np.float32(dsp.rms_level(out) * float(rng.uniform(2.0, 5.0)))
    return dsp.finish(out, n)


# ============================================================================ siren


def siren(rng: np.random.Generator, *, duration_s: float, sr: int = 8000) -> np.ndarray:
    """An emergency-vehicle siren: wail, yelp or hi-lo, near or far, maybe passing.

    The fundamental sweeps between ~560 and ~1500 Hz (wail: 3-7 s cycles; yelp:
    0.15-0.4 s; hi-lo: two alternating tones), with odd and weak even harmonics as
    from a horn speaker; distance low-passes and attenuates it, an approach or a
    pass-by swells the level and shifts the pitch (Doppler), buildings add echoes.
    Some sirens switch mode mid-way.

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
    # Pitch, level and Doppler at a 1 kHz control rate, interpolated to samples.
    factor, nc = dsp.control_grid(m, sr, rate=1000)
    t = np.arange(nc) * (factor / sr)
    f_lo = float(rng.uniform(560.0, 750.0))
    f_hi = float(rng.uniform(1150.0, 1480.0))
    modes = ["wail", "yelp", "hilo"]
    first = modes[int(rng.choice(3, p=[0.55, 0.3, 0.15]))]
    freq = _siren_sweep(rng, first, t, f_lo, f_hi)
    if dur > 6 and rng.random() < 0.3:
        other = modes[int(rng.integers(0, 3))]
        cut = round(float(rng.uniform(0.3, 0.7)) * nc)
        freq[cut:] = _siren_sweep(rng, other, t[cut:], f_lo, f_hi)
    # Motion: closest approach somewhere around the clip, or a steady distant siren.
    if rng.random() < 0.6:
        t0 = float(rng.uniform(-0.3, 1.3)) * dur
        v = float(rng.uniform(8.0, 20.0))
        d = float(rng.uniform(10.0, 80.0))
        x = v * (t - t0)
        v_rad = v * x / np.sqrt(d**2 + x**2)
        freq = freq * (dsp.SPEED_OF_SOUND / (dsp.SPEED_OF_SOUND + v_rad))
        level = np.sqrt(d**2 / (d**2 + x**2))
        level = np.maximum(level / max(float(level.max()), 1e-6), 0.05)
    else:
        level = np.ones(nc)
    freq = np.clip(freq, 520.0, 1580.0)
    nyq = 0.48 * sr
    # Harmonic weights (faded out before they would alias) times the level, per
    # control interval: they change slowly, so no need to interpolate them.
    k = -(-m // factor)
    lv = level[:k, None].astype(np.float32)
    w3 = np.clip((nyq - 3.0 * freq[:k]) / 150.0, 0.0, 1.0) * float(rng.uniform(0.15, 0.45))
    w2 = np.clip((nyq - 2.0 * freq[:k]) / 150.0, 0.0, 1.0) * float(rng.uniform(0.02, 0.15))
    ph = dsp.phase(freq, factor, k * factor, sr).reshape(k, factor)
    ph *= np.float32(2.0 * np.pi)
    s = np.sin(ph)
    c = np.cos(ph)
    # sin 3x = 3 sin x - 4 sin^3 x and sin 2x = 2 sin x cos x: no extra sin calls.
    h = s * s
    h *= np.float32(-4.0)
    h += np.float32(3.0)
    h *= lv * w3[:, None].astype(np.float32)
    h += lv
    c *= lv * np.float32(2.0) * w2[:, None].astype(np.float32)
    h += c
    h *= s
    tone = h.ravel()[:m]
    # Distance: high frequencies are absorbed; echoes from buildings.
    far = dsp.filt(dsp.band(2, 0.0, float(rng.uniform(1700.0, 3600.0)), sr), tone)
    out = far.copy()
    for _ in range(int(rng.integers(0, 3))):
        lag = round(float(rng.uniform(0.03, 0.2)) * sr)
        if lag < m:
            out[lag:] += far[:-lag] * np.float32(rng.uniform(0.15, 0.45))
    return dsp.finish(out, n)


def _siren_sweep(
    rng: np.random.Generator, mode: str, t: np.ndarray, f_lo: float, f_hi: float
) -> np.ndarray:
    """Instantaneous frequency (Hz) of a siren pattern at times ``t``."""
    if mode == "hilo":
        lo = f_lo * float(rng.uniform(1.0, 1.15))
        hi = lo * float(rng.uniform(1.3, 1.6))
        period = float(rng.uniform(0.8, 1.4))
        u = (t / period + float(rng.random())) % 1.0
        # Two tones with short glides between them.
        sq = np.clip((np.abs(u - 0.5) - 0.22) * 30.0, -1.0, 1.0)
        return lo + (hi - lo) * (0.5 + 0.5 * sq)
    period = float(rng.uniform(3.0, 7.0) if mode == "wail" else rng.uniform(0.15, 0.4))
    u = (t / period + float(rng.random())) % 1.0
    rise = float(rng.uniform(0.3, 0.6))  # fraction of the cycle spent rising
    shape = np.where(u < rise, u / rise, (1.0 - u) / (1.0 - rise))
    shape = 0.5 - 0.5 * np.cos(np.pi * shape)
    return f_lo + (f_hi - f_lo) * shape
