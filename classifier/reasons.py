"""Plain-language reasons for a score, in English and Indonesian.

Features are explained in groups a call-taker understands (silence, history of pranks,
time of day...). A group's contribution is measured by replacing its features with
what a typical genuine call shows and watching the score move (see
:mod:`classifier.scoring`); this module only names the groups and words their values.
Texts state facts about the call; whether a fact raised or lowered the score is carried
next to the text, so the same words serve both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from classifier.features import AUDIO_FEATURES, COMPLETE_FEATURE
from classifier.history import HISTORY_FEATURES, METADATA_FEATURES
from classifier.voices import VOICE_FEATURES

_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WEEKDAYS_ID = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")

_SILENCE = (
    "speech_ratio",
    "speech_segments",
    "speech_segment_mean_s",
    "speech_segment_max_s",
    "speech_per_minute",
    "longest_silence_s",
    "longest_silence_ratio",
    "first_speech_s",
    "last_speech_gap_s",
    "stereo",
    "caller_speech_ratio",
    "taker_speech_ratio",
    "overlap_ratio",
    "caller_taker_ratio",
    "caller_response_s",
    *VOICE_FEATURES,
)
#: Another voice this far (dB) under the call-taker's opening is called far from the phone.
FAR_VOICE_DB = -15.0
_LEVEL = (
    "energy_db_std",
    "energy_db_p10_rel",
    "energy_db_p50_rel",
    "dynamic_range_db",
    "noise_floor_rel_db",
    "snr_db",
    "clipping_ratio",
)
_HANDLING = tuple(
    f
    for f in AUDIO_FEATURES
    if f.startswith(("centroid", "bandwidth", "rolloff", "flatness", "contrast", "muffled"))
)
_VOICE = tuple(f for f in AUDIO_FEATURES if f.startswith(("pitch", "voiced", "mfcc")))
_LAUGHTER = tuple(f for f in AUDIO_FEATURES if f.startswith("laughter"))

#: Feature groups used for explanations; every feature belongs to exactly one.
REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "silence": _SILENCE,
    "whisper": ("whisper_ratio",),
    "level": _LEVEL,
    "handling": _HANDLING,
    "voice": _VOICE,
    "laughter": _LAUGHTER,
    "duration": ("audio_duration_s", "meta_log_duration", "call_complete"),
    "time": ("meta_hour", "meta_hour_sin", "meta_hour_cos", "meta_dow", "meta_weekend"),
    "number_type": ("meta_withheld", "meta_simless"),
    "prank_history": ("hist_prank", "hist_prank_7d"),
    "ghost_history": ("hist_ghost", "hist_ghost_7d"),
    "call_volume": (
        "hist_calls_1h",
        "hist_calls_24h",
        "hist_calls_7d",
        "hist_calls_30d",
        "hist_calls_total",
        "hist_hours_since_prev",
        "hist_short_share",
        "hist_unlabelled",
        "hist_has_history",
    ),
    "genuine_history": ("hist_emergency", "hist_non_emergency"),
}


def _check_groups() -> None:
    # Import-time assertion would be a side effect; tests call this instead.
    seen = [f for names in REASON_GROUPS.values() for f in names]
    every = (*AUDIO_FEATURES, COMPLETE_FEATURE, *METADATA_FEATURES, *HISTORY_FEATURES)
    dupes = {f for f in seen if seen.count(f) > 1}
    missing = set(every) - set(seen)
    extra = set(seen) - set(every)
    if dupes or missing or extra:
        raise AssertionError(f"reason groups: dupes {dupes}, missing {missing}, extra {extra}")


def _get(f: Mapping[str, float], name: str) -> float:
    v = f.get(name, float("nan"))
    return float(v) if v is not None else float("nan")


def _n(x: float) -> str:
    """A count as people say it: 3, not 3.0; 1.5 stays 1.5 (cleared calls weigh less)."""
    if not math.isfinite(x):
        return "?"
    return str(round(x)) if abs(x - round(x)) < 1e-6 else f"{x:.1f}"


def _calls(x: float, singular: str, plural: str) -> str:
    return f"{_n(x)} {singular if _n(x) == '1' else plural}"


def _pct(x: float) -> str:
    return f"{100.0 * min(max(x, 0.0), 1.0):.0f}%"


def _silence(f: Mapping[str, float]) -> tuple[str, str]:
    caller = _get(f, "caller_speech_ratio")
    if math.isfinite(caller):
        if caller < 0.5:
            return (
                f"caller silent for {_pct(1 - caller)} of the call",
                f"penelepon diam selama {_pct(1 - caller)} dari panggilan",
            )
        return (
            f"caller speaks for {_pct(caller)} of the call",
            f"penelepon berbicara selama {_pct(caller)} dari panggilan",
        )
    # A mono recording mixes both sides: the voice of the opening (the call-taker's
    # greeting) is told apart from any other voice on the line.
    other = _get(f, "other_speech_ratio")
    if _get(f, "voice_enrolled") > 0.5 and math.isfinite(other):
        if _get(f, "taker_only") > 0.5:
            return (
                "only the call-taker's voice on the line: no other voice answered",
                "hanya suara petugas di saluran: tidak ada suara lain yang menjawab",
            )
        rel = _get(f, "other_level_rel_db")
        if math.isfinite(rel) and rel <= FAR_VOICE_DB:
            # Faint beside the call-taker: talk away from the phone, a TV, a pocket.
            return (
                f"another voice than the call-taker's for {_pct(other)} of the call, "
                f"{-rel:.0f} dB under the call-taker: far from the phone",
                f"suara selain suara petugas selama {_pct(other)} dari panggilan, "
                f"{-rel:.0f} dB di bawah petugas: jauh dari telepon",
            )
        return (
            f"another voice than the call-taker's for {_pct(other)} of the call",
            f"suara selain suara petugas selama {_pct(other)} dari panggilan",
        )
    # Too little speech at the opening to know the call-taker's voice: every voice
    # counts, the call-taker's "halo?" included.
    s = _get(f, "speech_ratio")
    if not math.isfinite(s):
        return ("no audio yet", "belum ada audio")
    unknown = " (voices not told apart: too little speech at the opening)"
    unknown_id = " (suara tidak dapat dibedakan: terlalu sedikit ucapan di awal)"
    if not (_get(f, "voice_enrolled") < 0.5 and _get(f, "stereo") < 0.5):
        unknown = unknown_id = ""
    if s < 0.5:
        return (
            f"no speech on the line for {_pct(1 - s)} of the call{unknown}",
            f"tidak ada suara bicara selama {_pct(1 - s)} dari panggilan{unknown_id}",
        )
    return (
        f"speech on the line for {_pct(s)} of the call{unknown}",
        f"ada suara bicara selama {_pct(s)} dari panggilan{unknown_id}",
    )


def _whisper(f: Mapping[str, float]) -> tuple[str, str]:
    w = _get(f, "whisper_ratio")
    if not math.isfinite(w):
        return ("no audio to judge whispering", "tidak ada audio untuk menilai bisikan")
    return (
        f"whispered or muffled voice for {_pct(w)} of the call",
        f"bisikan atau suara teredam selama {_pct(w)} dari panggilan",
    )


def _level(f: Mapping[str, float]) -> tuple[str, str]:
    snr = _get(f, "snr_db")
    if not math.isfinite(snr):
        return ("no audio level measured", "tingkat suara tidak terukur")
    return (
        f"loudest sounds {max(snr, 0.0):.0f} dB above the line noise",
        f"suara terkeras {max(snr, 0.0):.0f} dB di atas derau saluran",
    )


def _handling(f: Mapping[str, float], ref: Mapping[str, float]) -> tuple[str, str]:
    m, r = _get(f, "muffled_db"), _get(ref, "muffled_db")
    if math.isfinite(m) and math.isfinite(r) and m > r:
        return (
            "muffled, rustling sound, as from a phone in a pocket or bag",
            "suara teredam dan gemerisik, seperti ponsel di saku atau tas",
        )
    return ("sound quality of the line", "kualitas suara saluran")


def _voice(f: Mapping[str, float]) -> tuple[str, str]:
    hz = _get(f, "pitch_caller_hz")
    if not math.isfinite(hz) and _get(f, "voice_enrolled") == 1.0:
        # The call's pitch is then the call-taker's own: not a fact about the caller.
        return (
            "no voiced speech from the caller heard",
            "tidak terdengar suara penelepon berbicara",
        )
    if not math.isfinite(hz):
        hz = _get(f, "pitch_median_hz")
    if not math.isfinite(hz):
        return ("no voiced speech heard", "tidak terdengar suara orang berbicara")
    if hz >= 250.0:
        return (
            f"high-pitched voice ({hz:.0f} Hz), as of a child",
            f"suara bernada tinggi ({hz:.0f} Hz), seperti suara anak-anak",
        )
    return (f"voice pitch {hz:.0f} Hz", f"nada suara {hz:.0f} Hz")


def _laughter(f: Mapping[str, float], ref: Mapping[str, float]) -> tuple[str, str]:
    b, r = _get(f, "laughter_burst_share"), _get(ref, "laughter_burst_share")
    if math.isfinite(b) and b > max(r, 0.0):
        return ("laughter-like bursts of sound", "terdengar suara seperti tertawa")
    return ("no laughter-like sound", "tidak terdengar suara tertawa")


def _duration(f: Mapping[str, float]) -> tuple[str, str]:
    d = _get(f, "audio_duration_s")
    if not math.isfinite(d):
        d = math.expm1(_get(f, "meta_log_duration"))
    if not math.isfinite(d) or d <= 0:
        return ("call just started", "panggilan baru dimulai")
    return (f"call lasted {d:.0f} s", f"panggilan berlangsung {d:.0f} detik")


def _time(f: Mapping[str, float]) -> tuple[str, str]:
    s, c = _get(f, "meta_hour_sin"), _get(f, "meta_hour_cos")
    d = _get(f, "meta_dow")
    if not (math.isfinite(s) and math.isfinite(c) and math.isfinite(d)):
        return ("time of the call", "waktu panggilan")
    hours = (math.atan2(s, c) * 24.0 / (2 * math.pi)) % 24.0
    minutes = round(hours * 60.0) % (24 * 60)
    hh, mm = divmod(minutes, 60)
    dow = int(d) % 7
    return (
        f"call at {hh:02d}:{mm:02d} on a {_WEEKDAYS_EN[dow]}",
        f"panggilan pukul {hh:02d}.{mm:02d} hari {_WEEKDAYS_ID[dow]}",
    )


def _number_type(f: Mapping[str, float]) -> tuple[str, str]:
    if _get(f, "meta_withheld") > 0.5:
        return ("number withheld", "nomor disembunyikan")
    if _get(f, "meta_simless") > 0.5:
        return ("handset without a SIM card", "ponsel tanpa kartu SIM")
    return ("number shown", "nomor terlihat")


def _history(
    kind_en: tuple[str, str], kind_id: str, total: str, week: str
) -> Callable[..., tuple[str, str]]:
    one, many = kind_en

    def text(f: Mapping[str, float]) -> tuple[str, str]:
        t, w = _get(f, total), _get(f, week)
        if w > 0:
            return (
                f"{_calls(w, one, many)} from this number in the last 7 days",
                f"{_n(w)} {kind_id} dari nomor ini dalam 7 hari terakhir",
            )
        if t > 0:
            return (
                f"{_calls(t, 'earlier ' + one, 'earlier ' + many)} from this number",
                f"{_n(t)} {kind_id} sebelumnya dari nomor ini",
            )
        return (
            f"no earlier {many} from this number",
            f"belum pernah ada {kind_id} dari nomor ini",
        )

    return text


def _call_volume(f: Mapping[str, float]) -> tuple[str, str]:
    if _get(f, "meta_withheld") > 0.5:
        return ("withheld number: no call history", "nomor disembunyikan: tanpa riwayat")
    if not _get(f, "hist_calls_total") > 0:
        return ("first call from this number", "panggilan pertama dari nomor ini")
    h1, h24 = _get(f, "hist_calls_1h"), _get(f, "hist_calls_24h")
    if h1 > 0:
        return (
            f"{_calls(h1, 'earlier call', 'earlier calls')} from this number in the last hour",
            f"{_n(h1)} panggilan sebelumnya dari nomor ini dalam 1 jam terakhir",
        )
    if h24 > 0:
        return (
            f"{_calls(h24, 'earlier call', 'earlier calls')} from this number in the last 24 hours",
            f"{_n(h24)} panggilan sebelumnya dari nomor ini dalam 24 jam terakhir",
        )
    total = _get(f, "hist_calls_total")
    return (
        f"{_calls(total, 'earlier call', 'earlier calls')} from this number",
        f"{_n(total)} panggilan sebelumnya dari nomor ini",
    )


def _genuine_history(f: Mapping[str, float]) -> tuple[str, str]:
    n = _get(f, "hist_emergency") + _get(f, "hist_non_emergency")
    if n > 0:
        return (
            f"{_calls(n, 'earlier genuine call', 'earlier genuine calls')} from this number",
            f"{_n(n)} panggilan sungguhan sebelumnya dari nomor ini",
        )
    return (
        "no earlier genuine calls from this number",
        "belum ada panggilan sungguhan sebelumnya dari nomor ini",
    )


_TEXTS: dict[str, Callable[..., tuple[str, str]]] = {
    "silence": _silence,
    "whisper": _whisper,
    "level": _level,
    "voice": _voice,
    "duration": _duration,
    "time": _time,
    "number_type": _number_type,
    "prank_history": _history(
        ("prank call", "prank calls"), "panggilan iseng", "hist_prank", "hist_prank_7d"
    ),
    "ghost_history": _history(
        ("ghost (silent) call", "ghost (silent) calls"),
        "panggilan kosong",
        "hist_ghost",
        "hist_ghost_7d",
    ),
    "call_volume": _call_volume,
    "genuine_history": _genuine_history,
}
_TEXTS_WITH_REF: dict[str, Callable[..., tuple[str, str]]] = {
    "handling": _handling,
    "laughter": _laughter,
}


def describe(
    group: str, features: Mapping[str, float], *, reference: Mapping[str, float]
) -> tuple[str, str]:
    """English and Indonesian text stating what a feature group shows for one call.

    Parameters
    ----------
    group : str
        A key of :data:`REASON_GROUPS`.
    features : mapping of str to float
        The call's features (any subset; missing ones read as NaN).
    reference : mapping of str to float, keyword-only
        Typical values of a genuine call, for groups worded relative to them.

    Returns
    -------
    (str, str)
        English text, Indonesian text.
    """
    if group in _TEXTS_WITH_REF:
        return _TEXTS_WITH_REF[group](features, reference)
    if group in _TEXTS:
        return _TEXTS[group](features)
    raise KeyError(f"unknown reason group {group!r}; expected one of {', '.join(REASON_GROUPS)}")


def describe_early_silence(features: Mapping[str, float], *, heard_s: float) -> tuple[str, str]:
    """English and Indonesian text of a ghost flag raised early in a call.

    The caller has been silent *so far*: before the model's minimum time heard a silent
    caller may still be about to speak, or be unable to (a person in danger), which is
    why such a flag is at most ``possible``.

    Parameters
    ----------
    features : mapping of str to float
        The call's features so far.
    heard_s : float, keyword-only
        Seconds heard when scored.

    Returns
    -------
    (str, str)
        English text, Indonesian text.
    """
    secs = f"{heard_s:.0f}" if math.isfinite(heard_s) else "?"
    caller = _get(features, "caller_speech_ratio")
    if not math.isfinite(caller):
        caller = _get(features, "speech_ratio")
    quiet = f", silent {_pct(1 - caller)} of the time" if math.isfinite(caller) else ""
    quiet_id = f", diam {_pct(1 - caller)} dari waktu itu" if math.isfinite(caller) else ""
    return (
        f"caller silent so far (first {secs} s heard{quiet}): may not have spoken yet, "
        "or may be in danger and unable to speak",
        f"penelepon diam sejauh ini ({secs} detik pertama terdengar{quiet_id}): mungkin belum "
        "sempat berbicara, atau dalam bahaya dan tidak dapat berbicara",
    )


#: Shown with every flag: the flag is advice and a silent caller may be in danger.
ADVISORY = {
    "en": (
        "Advice only: answer and handle every call. A silent caller may be a victim who "
        "cannot speak."
    ),
    "id": (
        "Hanya saran: jawab dan tangani setiap panggilan. Penelepon yang diam mungkin korban "
        "yang tidak dapat berbicara."
    ),
}
