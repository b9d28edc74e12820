"""Turn one planned call into a recording: both parties, sounds, the phone channel.

The call-taker greets and prompts in every call (ghost calls included); the caller's
side goes through a randomised phone channel; the recording is written mono (mixed)
or stereo (caller and call-taker on separate channels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from training.simulator import channel as ch
from training.simulator import phrases, sounds, voice
from training.simulator.population import CallPlan
from training.simulator.voice import Voice

SR = 8000

# Output encodings, with weights: mostly what 112 recorders store (G.711 at 8 kHz),
# some wideband and lossless files so loaders are exercised on every format.
FILE_FORMATS: tuple[tuple[str, str, int, float], ...] = (
    # (name, soundfile format/subtype spec, sample rate, weight)
    ("wav_ulaw_8k", "WAV/ULAW", 8000, 0.55),
    ("wav_alaw_8k", "WAV/ALAW", 8000, 0.10),
    ("wav_pcm16_8k", "WAV/PCM_16", 8000, 0.15),
    ("wav_pcm16_16k", "WAV/PCM_16", 16000, 0.08),
    ("flac_16k", "FLAC/PCM_16", 16000, 0.12),
)

EMERGENCY_BACKGROUNDS = ("siren", "crowd", "traffic", "rain", "wind", "room_tone", "footsteps")
NON_EMERGENCY_BACKGROUNDS = ("room_tone", "tv_music", "traffic", "kitchen", "crowd", "rain")
PRANK_BACKGROUNDS = ("tv_music", "room_tone", "crowd", "traffic")
GHOST_AMBIENT = ("traffic", "wind", "room_tone", "tv_music", "crowd", "rain", "kitchen")


@dataclass
class RealClips:
    """Real recordings to mix in; empty when not given.

    ``speech`` and ``noise`` come from ``--speech-dir`` / ``--noise-dir`` (any speech,
    any noise), or, with ``--real-dir``, the roles of
    :class:`training.simulator.realbank.RealBank` fill every field: each sound then
    plays its own part (handling sounds in pockets, music for a TV, laughter for
    pranks, cries and coughs behind emergencies).
    """

    speech: list[np.ndarray] = field(default_factory=list)
    noise: list[np.ndarray] = field(default_factory=list)
    child: list[np.ndarray] = field(default_factory=list)
    laughter: list[np.ndarray] = field(default_factory=list)
    vocal: list[np.ndarray] = field(default_factory=list)
    handling: list[np.ndarray] = field(default_factory=list)
    ambient: list[np.ndarray] = field(default_factory=list)
    music: list[np.ndarray] = field(default_factory=list)

    @property
    def by_role(self) -> bool:
        return bool(self.handling or self.ambient or self.music)

    def role(self, name: str) -> list[np.ndarray]:
        clips: list[np.ndarray] = getattr(self, name)
        return clips


@dataclass
class Rendered:
    """A rendered call: caller and call-taker tracks at 8 kHz and what went into them."""

    caller: np.ndarray
    taker: np.ndarray
    meta: dict[str, str]


def _db(x: float) -> float:
    return float(10.0 ** (x / 20.0))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _place(track: np.ndarray, clip: np.ndarray, at: int) -> int:
    """Add ``clip`` into ``track`` at sample ``at`` (cropped at the end); return its end."""
    if at >= track.size or clip.size == 0:
        return at
    end = min(track.size, at + clip.size)
    track[at:end] += clip[: end - at]
    return end


def _mix(track: np.ndarray, sound: np.ndarray, gain: float) -> None:
    """``track += sound * gain``, scaling ``sound`` (a fresh, same-length array) in place."""
    sound *= np.float32(gain)
    track += sound


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if x.size >= n:
        return x[:n]
    return np.pad(x, (0, n - x.size))


class _Timeline:
    """Alternating turns of call-taker and caller on two tracks."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n = n
        self.rng = rng
        self.caller = np.zeros(n, dtype=np.float32)
        self.taker = np.zeros(n, dtype=np.float32)
        self.t = 0

    def gap(self, lo: float, hi: float) -> None:
        self.t += int(self.rng.uniform(lo, hi) * SR)

    def say(self, clip: np.ndarray, *, who: str, level: float = 1.0) -> None:
        track = self.caller if who == "caller" else self.taker
        self.t = _place(track, clip if level == 1.0 else clip * np.float32(level), self.t)

    def extend_to(self, n: int) -> None:
        """Lengthen both tracks to ``n`` samples (never shorten)."""
        if n > self.n:
            pad = n - self.n
            self.caller = np.concatenate([self.caller, np.zeros(pad, dtype=np.float32)])
            self.taker = np.concatenate([self.taker, np.zeros(pad, dtype=np.float32)])
            self.n = n

    @property
    def full(self) -> bool:
        return self.t >= self.n - int(0.3 * SR)


_RATE_STEPS = (0.92, 0.96, 1.0, 1.04, 1.08)


@lru_cache(maxsize=256)
def _utterance(text: str, v: Voice, rate_scale: float, pitch: int) -> np.ndarray:
    clip = voice.synthesize(text, voice=v, sr=SR, rate_scale=rate_scale, pitch_offset=pitch)
    clip.setflags(write=False)
    return clip


def _speak(
    text: str, v: Voice, rng: np.random.Generator, *, rate_scale: float = 1.0, pitch: int = 0
) -> np.ndarray:
    """Synthesise with a little rate jitter.

    Callers repeat themselves and call-takers say the same lines all shift long, so
    utterances are cached per process; synthesize is a pure function of its arguments,
    so the cache changes no output.
    """
    step = _RATE_STEPS[int(rng.integers(0, len(_RATE_STEPS)))]
    return _utterance(text, v, round(rate_scale * step, 4), pitch)


def _real_or_synth(
    text: str,
    v: Voice,
    rng: np.random.Generator,
    clips: RealClips,
    used: list[str],
    *,
    p_real: float,
    rate_scale: float = 1.0,
    pitch: int = 0,
) -> np.ndarray:
    bank = clips.child if v.kind == "child" and clips.child else clips.speech
    if bank and rng.random() < p_real:
        used.append("speech")
        clip = sounds.excerpt(bank, rng=rng, duration_s=float(rng.uniform(1.5, 5.0)), sr=SR)
        peak = float(np.max(np.abs(clip))) if clip.size else 0.0
        return clip * np.float32(0.5 / peak) if peak > 1e-6 else clip
    return _speak(text, v, rng, rate_scale=rate_scale, pitch=pitch)


def _background(
    names: Sequence[str],
    rng: np.random.Generator,
    n: int,
    clips: RealClips,
    used: list[str],
    *,
    roles: Sequence[str] = ("ambient",),
) -> tuple[np.ndarray, str]:
    name = str(rng.choice(list(names)))
    dur = n / SR
    if clips.noise and rng.random() < 0.35:
        used.append("noise")
        return _fit(sounds.excerpt(clips.noise, rng=rng, duration_s=dur, sr=SR), n), "real_noise"
    have = [r for r in roles if clips.role(r)]
    if have and rng.random() < 0.6:
        role = str(rng.choice(have))
        used.append("noise")
        clip = sounds.excerpt(clips.role(role), rng=rng, duration_s=dur, sr=SR)
        return _fit(clip, n), f"real_{role}"
    gen: Callable[..., np.ndarray] = sounds.BACKGROUNDS[name]
    return _fit(gen(rng, duration_s=dur, sr=SR), n), name


def _conversation(
    plan: CallPlan,
    tl: _Timeline,
    caller_voice: Voice,
    taker_voice: Voice,
    rng: np.random.Generator,
    clips: RealClips,
    used: list[str],
    *,
    topic: str,
    rate_scale: float = 1.0,
    pitch: int = 0,
    level: float = 1.0,
    laugh_after: bool = False,
    first_turn_whole: bool = False,
) -> None:
    turns = phrases.caller_turns(
        rng, label=plan.label, topic=topic, language=plan.language, caller_kind=plan.caller_kind
    )
    prompts = phrases.call_taker_prompts(
        rng, label=plan.label, topic=topic, language=plan.language, caller_kind=plan.caller_kind
    )
    i = 0
    while (not tl.full or (first_turn_whole and i == 0)) and turns:
        text = turns[i % len(turns)]
        clip = _real_or_synth(
            text,
            caller_voice,
            rng,
            clips,
            used,
            p_real=0.3 if plan.label in ("emergency", "non_emergency") else 0.1,
            rate_scale=rate_scale,
            pitch=pitch,
        )
        if first_turn_whole and i == 0:
            # The report itself: a call cut before the caller said it would be an SOS
            # burst labelled emergency, which no recording can tell from a ghost call.
            tl.extend_to(tl.t + clip.size + int(0.4 * SR))
        tl.say(clip, who="caller", level=level)
        if laugh_after and rng.random() < 0.7:
            tl.gap(0.0, 0.3)
            if clips.laughter and rng.random() < 0.5:
                used.append("noise")
                laugh = sounds.excerpt(
                    clips.laughter, rng=rng, duration_s=float(rng.uniform(0.8, 2.5)), sr=SR
                )
            else:
                laugh = sounds.laughter(
                    rng,
                    duration_s=float(rng.uniform(0.8, 2.5)),
                    sr=SR,
                    child=plan.caller_kind == "child",
                )
            tl.say(laugh * np.float32(4.0), who="caller")
        tl.gap(0.3, 1.2)
        if tl.full:
            break
        if prompts:
            tl.say(_speak(prompts[i % len(prompts)], taker_voice, rng), who="taker")
            tl.gap(0.2, 1.0)
        i += 1
        if i >= 2 * max(len(turns), 1):
            # Nothing left to say: the rest of the call is the line staying open.
            break


def render_call(
    plan: CallPlan,
    *,
    rng: np.random.Generator,
    taker_voice: Voice,
    clips: RealClips | None = None,
) -> Rendered:
    """Render one planned call into caller and call-taker tracks.

    Parameters
    ----------
    plan : CallPlan
        Who calls, when, with which label, scenario and planned duration.
    rng : numpy.random.Generator, keyword-only
        The call's own generator; the same state gives the same audio.
    taker_voice : Voice, keyword-only
        The call-taker on duty for this call's shift.
    clips : RealClips or None, keyword-only
        Real speech and noise recordings to mix in.

    Returns
    -------
    Rendered
        ``caller`` and ``taker`` float32 arrays of shape (n,), n = duration * 8000,
        the caller side already through the phone channel, plus metadata.
    """
    clips = clips or RealClips()
    used: list[str] = []
    n = max(round(plan.duration_s * SR), SR)
    tl = _Timeline(n, rng)
    kind = plan.caller_kind
    caller_voice = voice.random_voice(rng, kind=kind, language=plan.language)
    hour = plan.started_at.hour
    topic = "none"
    background = "none"
    extra = np.zeros(n, dtype=np.float32)  # caller-side sounds besides speech

    # Every call opens with the call-taker's greeting.
    tl.gap(0.2, 1.2)
    greeting = phrases.call_taker_greeting(rng, hour=hour, language=plan.language)
    greeting_clip = _speak(greeting, taker_voice, rng)
    if plan.scenario == "short_report":
        tl.extend_to(tl.t + greeting_clip.size)  # its report follows a whole greeting
    tl.say(greeting_clip, who="taker")
    tl.gap(0.3, 1.5)

    scenario = plan.scenario
    if plan.label in ("emergency", "non_emergency") or scenario in (
        "fake_incident",
        "insult",
        "hoax_report",
        "silly_question",
    ):
        topic = phrases.pick_topic(rng, label=plan.label)
        rate_scale, pitch, level = 1.0, 0, 1.0
        if scenario == "distressed":
            rate_scale, pitch, level = 1.3, 15, 1.8
        if scenario == "quiet_victim":
            # A victim who cannot speak freely: silence first, then whispers.
            _ghost_prompts(tl, taker_voice, rng, plan, until_s=float(rng.uniform(3.0, 10.0)))
            extra += _fit(sounds.breathing(rng, duration_s=n / SR, sr=SR), n) * np.float32(0.4)
            turns = phrases.caller_turns(
                rng,
                label=plan.label,
                topic=topic,
                language=plan.language,
                caller_kind=plan.caller_kind,
            )
            for text in turns:
                if tl.full:
                    break
                w = voice.whisper(_speak(text, caller_voice, rng, rate_scale=0.9), rng=rng, sr=SR)
                tl.say(w, who="caller", level=0.5)
                tl.gap(0.8, 2.5)
        else:
            _conversation(
                plan,
                tl,
                caller_voice,
                taker_voice,
                rng,
                clips,
                used,
                topic=topic,
                rate_scale=rate_scale,
                pitch=pitch,
                level=level,
                laugh_after=scenario in ("fake_incident", "insult", "silly_question"),
                first_turn_whole=scenario == "short_report",
            )
            if tl.n > n:
                extra = np.concatenate([extra, np.zeros(tl.n - n, dtype=np.float32)])
                n = tl.n
        if not tl.full and not plan.hangup_mid_sentence:
            # A conversation ends with the last words: the caller or the call-taker hangs
            # up within a second or so. (Kept open to the planned length, genuine calls
            # had silences of 7-15 s at their end that real calls do not have.)
            n = max(min(n, tl.t + int(rng.uniform(0.3, 1.5) * SR)), SR)
            tl.n, tl.caller, tl.taker, extra = n, tl.caller[:n], tl.taker[:n], extra[:n]
        names = {
            "emergency": EMERGENCY_BACKGROUNDS,
            "non_emergency": NON_EMERGENCY_BACKGROUNDS,
        }.get(plan.label, PRANK_BACKGROUNDS)
        roles = {"emergency": ("ambient", "vocal"), "non_emergency": ("ambient", "music")}
        if rng.random() < 0.7:
            bg, background = _background(
                names, rng, n, clips, used, roles=roles.get(plan.label, ("music", "ambient"))
            )
            _mix(extra, bg, _db(float(rng.uniform(-22, -8))))
        if plan.label == "prank" and rng.random() < 0.5:
            friends = sounds.laughter(
                rng, duration_s=n / SR, sr=SR, n_voices=int(rng.integers(2, 4)), child=True
            )
            _mix(extra, _fit(friends, n), _db(float(rng.uniform(-18, -8))))
            background += "+friends_laughing"
    elif scenario in ("giggle", "silent_prank"):
        topic = scenario
        _ghost_prompts(tl, taker_voice, rng, plan, until_s=n / SR)
        if scenario == "giggle":
            laugh = sounds.laughter(
                rng, duration_s=n / SR, sr=SR, n_voices=int(rng.integers(1, 4)), child=True
            )
            _mix(extra, _fit(laugh, n), _db(float(rng.uniform(-6, 4))))
            if rng.random() < 0.6:
                text = phrases.laughter_text(rng)
                clip = _speak(text, caller_voice, rng, rate_scale=1.2)
                _place(tl.caller, clip, int(rng.uniform(0.3, 0.7) * n))
        else:
            extra += _fit(sounds.breathing(rng, duration_s=n / SR, sr=SR), n)
            if rng.random() < 0.5:
                laugh = sounds.laughter(rng, duration_s=min(2.0, n / SR), sr=SR, child=True)
                _place(extra, laugh * np.float32(0.5), int(rng.uniform(0.2, 0.8) * n))
        if rng.random() < 0.5:
            bg, background = _background(
                PRANK_BACKGROUNDS, rng, n, clips, used, roles=("music", "ambient")
            )
            _mix(extra, bg, _db(float(rng.uniform(-20, -8))))
    else:  # ghost
        _ghost_prompts(tl, taker_voice, rng, plan, until_s=n / SR)
        extra, background = _ghost_caller_side(plan, rng, n, clips, used)

    caller_dry = tl.caller
    caller_dry += extra
    severity = str(rng.choice(["clean", "normal", "normal", "poor"]))
    params = ch.random_channel(rng, severity=severity)
    caller = ch.apply_channel(caller_dry, params=params, rng=rng, sr=SR)
    # The call-taker's headset is a local, clean line: band-limited, steady level.
    taker = tl.taker
    taker *= np.float32(_db(float(rng.uniform(-8, -2))))
    np.clip(taker, -1, 1, out=taker)
    taker += sounds.comfort_noise(rng, duration_s=n / SR, sr=SR)[:n]
    meta = {
        "scenario": scenario,
        "topic": topic,
        "background": background,
        "caller_voice": caller_voice.describe(),
        "taker_voice": taker_voice.describe(),
        "codec": params.codec,
        "channel_severity": severity,
        "real_speech": str(used.count("speech")),
        "real_noise": str(used.count("noise")),
    }
    return Rendered(
        caller=caller.astype(np.float32, copy=False),
        taker=taker.astype(np.float32, copy=False),
        meta=meta,
    )


def _ghost_prompts(
    tl: _Timeline, taker_voice: Voice, rng: np.random.Generator, plan: CallPlan, *, until_s: float
) -> None:
    """The call-taker's "halo? halo?" while nobody answers."""
    until = min(tl.n, int(until_s * SR))
    prompts = phrases.call_taker_ghost_prompts(rng, language=plan.language, n=6)
    k = 0
    while tl.t < until - SR and k < len(prompts):
        tl.say(_speak(prompts[k], taker_voice, rng), who="taker")
        tl.gap(1.5, 7.0)
        k += 1
    tl.t = max(tl.t, until)


def _ghost_caller_side(
    plan: CallPlan, rng: np.random.Generator, n: int, clips: RealClips, used: list[str]
) -> tuple[np.ndarray, str]:
    dur = n / SR
    x = np.zeros(n, dtype=np.float32)
    parts: list[str] = []
    if plan.scenario == "pocket_dial":
        if clips.noise and rng.random() < 0.4:
            used.append("noise")
            x += _fit(sounds.excerpt(clips.noise, rng=rng, duration_s=dur, sr=SR), n)
            parts.append("real_noise")
        elif clips.handling and rng.random() < 0.7:
            used.append("noise")
            x += _in_pocket(clips.handling, rng, n) * np.float32(_db(float(rng.uniform(-12, 4))))
            parts.append("real_handling")
        else:
            x += _fit(sounds.pocket_rustle(rng, duration_s=dur, sr=SR), n) * np.float32(
                _db(float(rng.uniform(-6, 6)))
            )
            parts.append("pocket_rustle")
        if rng.random() < 0.5:
            x += _fit(sounds.footsteps(rng, duration_s=dur, sr=SR), n) * np.float32(0.5)
            parts.append("footsteps")
        if rng.random() < 0.6:
            x += _distant_talk(plan, rng, n, clips, used)
            parts.append("distant_talk")
        if rng.random() < 0.5:
            bg, name = _background(GHOST_AMBIENT, rng, n, clips, used)
            _mix(x, bg, _db(float(rng.uniform(-24, -10))))
            parts.append(name)
    elif plan.scenario == "open_line":
        bg, name = _background(GHOST_AMBIENT, rng, n, clips, used, roles=("ambient", "music"))
        # Heard through a phone lying somewhere: quieter than a caller's voice would be.
        _mix(x, bg, _db(float(rng.uniform(-24, -6))))
        parts.append(name)
        if clips.handling and rng.random() < 0.4:
            used.append("noise")
            x += _in_pocket(clips.handling, rng, n) * np.float32(_db(float(rng.uniform(-18, -6))))
            parts.append("real_handling")
        if rng.random() < 0.7:
            x += _distant_talk(plan, rng, n, clips, used)
            parts.append("distant_talk")
        if rng.random() < 0.3:
            x += _fit(sounds.pocket_rustle(rng, duration_s=dur, sr=SR), n) * np.float32(0.3)
            parts.append("rustle")
    else:  # sos_burst, silent: dead air, the network's comfort noise, maybe a room
        x += _fit(sounds.comfort_noise(rng, duration_s=dur, sr=SR), n)
        parts.append("comfort_noise")
        if rng.random() < 0.4:
            x += _fit(sounds.room_tone(rng, duration_s=dur, sr=SR), n) * np.float32(0.3)
            parts.append("room_tone")
        if plan.scenario == "sos_burst" and rng.random() < 0.3:
            x += _fit(sounds.pocket_rustle(rng, duration_s=dur, sr=SR), n) * np.float32(0.4)
            parts.append("rustle")
    return x, "+".join(parts)


def _in_pocket(bank: Sequence[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    """Real handling sounds (rubs, taps, steps) muffled by cloth, in bursts with pauses."""
    import scipy.signal

    x = sounds.excerpt(bank, rng=rng, duration_s=n / SR, sr=SR)
    cloth = scipy.signal.butter(4, float(rng.uniform(600, 2000)), fs=SR, output="sos")
    x = _fit(scipy.signal.sosfilt(cloth, x).astype(np.float32), n)
    # Movement comes and goes: on for 0.5-4 s, off for 0.5-6 s.
    gate = np.zeros(n, np.float32)
    t = int(rng.uniform(0, 2) * SR)
    while t < n:
        on = int(rng.uniform(0.5, 4.0) * SR)
        gate[t : t + on] = 1.0
        t += on + int(rng.uniform(0.5, 6.0) * SR)
    ramp = np.hanning(2 * SR // 20 + 1).astype(np.float32)
    gate = np.convolve(gate, ramp / ramp.sum(), mode="same").astype(np.float32)
    return x * gate


def _distant_talk(
    plan: CallPlan, rng: np.random.Generator, n: int, clips: RealClips, used: list[str]
) -> np.ndarray:
    """People talking near the phone, muffled and far away."""
    out = np.zeros(n, dtype=np.float32)
    t = int(rng.uniform(0, 3) * SR)
    speakers = [voice.random_voice(rng, language=plan.language) for _ in range(2)]
    while t < n:
        if clips.speech and rng.random() < (0.6 if clips.by_role else 0.3):
            used.append("speech")
            clip = sounds.excerpt(clips.speech, rng=rng, duration_s=float(rng.uniform(1, 4)), sr=SR)
        else:
            text = phrases.background_talk(rng, language=plan.language)
            clip = voice.synthesize(text, voice=speakers[int(rng.integers(0, 2))], sr=SR)
        far = sounds.distant_talk(clip, rng=rng, sr=SR)
        t = _place(out, far, t) + int(rng.uniform(0.5, 4.0) * SR)
    return out


def mix_recording(
    rendered: Rendered, *, stereo: bool, caller_channel: str, rng: np.random.Generator
) -> np.ndarray:
    """Mix the two tracks into the recorded file's channels.

    Returns
    -------
    numpy.ndarray
        float32, shape (n,) for mono or (n, 2) for stereo, within [-1, 1].
    """
    if stereo:
        left, right = (
            (rendered.caller, rendered.taker)
            if caller_channel == "left"
            else (rendered.taker, rendered.caller)
        )
        out = np.stack([left, right], axis=1)
    else:
        taker_gain = np.float32(_db(float(rng.uniform(-6, 0))))
        out = rendered.taker * taker_gain
        out += rendered.caller
    np.clip(out, -1.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def pick_file_format(rng: np.random.Generator) -> tuple[str, str, str, int]:
    """Choose the stored encoding: (name, soundfile format, subtype, sample rate)."""
    weights = np.array([f[3] for f in FILE_FORMATS])
    name, spec, rate, _ = FILE_FORMATS[
        int(rng.choice(len(FILE_FORMATS), p=weights / weights.sum()))
    ]
    fmt, subtype = spec.split("/")
    return name, fmt, subtype, rate
