"""Plain-language reasons in English and Indonesian (classifier/reasons.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from classifier.features import AUDIO_FEATURES, FEATURE_NAMES
from classifier.history import empty_history, metadata_features
from classifier.reasons import ADVISORY, REASON_GROUPS, _check_groups, describe

_TZ = timezone(timedelta(hours=7))


def _call(**over: float) -> dict[str, float]:
    """A complete, ordinary feature mapping: a talking caller with no history."""
    f = {name: 0.0 for name in AUDIO_FEATURES}
    f.update(
        speech_ratio=0.6,
        caller_speech_ratio=0.55,
        whisper_ratio=0.1,
        snr_db=25.0,
        pitch_median_hz=140.0,
        pitch_caller_hz=float("nan"),
        pitch_caller_high_share=float("nan"),
        audio_duration_s=42.0,
    )
    f.update(empty_history())
    f.update(
        metadata_features(
            caller_id="+6281234567890",
            started_at=datetime(2025, 6, 3, 15, 40, tzinfo=_TZ),
            duration_s=42.0,
        )
    )
    f.update(over)
    return f


def test_check_groups_passes_and_covers_every_feature() -> None:
    _check_groups()
    grouped = [f for names in REASON_GROUPS.values() for f in names]
    assert sorted(grouped) == sorted(FEATURE_NAMES)


@pytest.mark.parametrize("group", list(REASON_GROUPS))
def test_each_group_gives_two_texts(group: str) -> None:
    en, id_ = describe(group, _call(), reference=_call())
    assert isinstance(en, str) and isinstance(id_, str)
    assert en.strip() and id_.strip()
    assert en != id_
    assert "nan" not in en.lower().split()


def test_silence_of_the_caller() -> None:
    en, id_ = describe("silence", _call(caller_speech_ratio=0.06), reference={})
    assert en == "caller silent for 94% of the call"
    assert id_ == "penelepon diam selama 94% dari panggilan"
    en, _ = describe("silence", _call(caller_speech_ratio=0.8), reference={})
    assert en == "caller speaks for 80% of the call"


def test_silence_of_a_mono_line_uses_speech_ratio() -> None:
    en, _ = describe(
        "silence", _call(caller_speech_ratio=float("nan"), speech_ratio=0.1), reference={}
    )
    # No voice enrolled at the opening: every voice counts, and the reason says so.
    assert en == (
        "no speech on the line for 90% of the call "
        "(voices not told apart: too little speech at the opening)"
    )


def test_silence_of_a_mono_line_tells_the_call_takers_voice_apart() -> None:
    mono = {"caller_speech_ratio": float("nan"), "speech_ratio": 0.8, "voice_enrolled": 1.0}
    en, idn = describe(
        "silence", _call(**mono, other_speech_ratio=0.0, taker_only=1.0), reference={}
    )
    assert en == "only the call-taker's voice on the line: no other voice answered"
    assert idn.startswith("hanya suara petugas")
    en, _ = describe(
        "silence", _call(**mono, other_speech_ratio=0.42, taker_only=0.0), reference={}
    )
    assert en == "another voice than the call-taker's for 42% of the call"
    assert describe("silence", {}, reference={}) == ("no audio yet", "belum ada audio")
    # A faint other voice is called far from the phone; a near one is not.
    far = _call(**mono, other_speech_ratio=0.3, taker_only=0.0, other_level_rel_db=-22.4)
    en, idn = describe("silence", far, reference={})
    assert en == (
        "another voice than the call-taker's for 30% of the call, 22 dB under the "
        "call-taker: far from the phone"
    )
    assert "jauh dari telepon" in idn
    near = _call(**mono, other_speech_ratio=0.3, taker_only=0.0, other_level_rel_db=-4.0)
    assert describe("silence", near, reference={})[0].endswith("30% of the call")


def test_prank_history_of_the_week() -> None:
    en, id_ = describe("prank_history", _call(hist_prank=6.0, hist_prank_7d=4.0), reference={})
    assert en == "4 prank calls from this number in the last 7 days"
    assert id_ == "4 panggilan iseng dari nomor ini dalam 7 hari terakhir"
    en, _ = describe("prank_history", _call(hist_prank=2.0, hist_prank_7d=0.0), reference={})
    assert en == "2 earlier prank calls from this number"
    en, _ = describe("prank_history", _call(), reference={})
    assert en == "no earlier prank calls from this number"
    # Cleared calls weigh less: fractional counts keep their decimal.
    en, _ = describe("ghost_history", _call(hist_ghost=1.5, hist_ghost_7d=1.5), reference={})
    assert en.startswith("1.5 ghost (silent) calls")


def test_number_types() -> None:
    withheld = metadata_features(
        caller_id="", started_at=datetime(2025, 6, 3, tzinfo=_TZ), duration_s=0.0
    )
    assert describe("number_type", withheld, reference={}) == (
        "number withheld",
        "nomor disembunyikan",
    )
    simless = metadata_features(
        caller_id="simless:abc", started_at=datetime(2025, 6, 3, tzinfo=_TZ), duration_s=0.0
    )
    assert describe("number_type", simless, reference={}) == (
        "handset without a SIM card",
        "ponsel tanpa kartu SIM",
    )
    assert describe("number_type", _call(), reference={})[0] == "number shown"
    en, _ = describe("call_volume", {**_call(), **withheld}, reference={})
    assert en == "withheld number: no call history"


def test_time_of_the_call_in_both_languages() -> None:
    meta = metadata_features(
        caller_id="+6281234567890",
        started_at=datetime(2025, 6, 3, 15, 40, tzinfo=_TZ),  # a Tuesday
        duration_s=10.0,
    )
    en, id_ = describe("time", meta, reference={})
    assert "15:40" in en and "Tuesday" in en
    assert "15.40" in id_ and "Selasa" in id_
    assert en == "call at 15:40 on a Tuesday"
    late = metadata_features(
        caller_id="", started_at=datetime(2025, 6, 8, 23, 55, tzinfo=_TZ), duration_s=0.0
    )
    en, id_ = describe("time", late, reference={})
    assert en == "call at 23:55 on a Sunday"
    assert id_ == "panggilan pukul 23.55 hari Minggu"


def test_nan_pitch_reads_as_no_voice() -> None:
    en, id_ = describe("voice", _call(pitch_median_hz=float("nan")), reference={})
    assert en == "no voiced speech heard"
    assert id_ == "tidak terdengar suara orang berbicara"
    en, _ = describe("voice", _call(pitch_median_hz=310.0), reference={})
    assert en.startswith("high-pitched voice (310 Hz)")


def test_the_voice_described_is_the_callers_not_the_call_takers() -> None:
    # A mono call opened by a woman call-taker (pitch of all speech 240 Hz) and a man
    # calling (130 Hz on the stretches attributed to him): the reason is his voice.
    mono = _call(pitch_median_hz=240.0, voice_enrolled=1.0, pitch_caller_hz=130.0)
    assert describe("voice", mono, reference={})[0] == "voice pitch 130 Hz"
    # Only the call-taker spoke: no pitch is the caller's, whatever the call's is.
    taker_only = _call(pitch_median_hz=240.0, voice_enrolled=1.0)
    en, id_ = describe("voice", taker_only, reference={})
    assert en == "no voiced speech from the caller heard"
    assert id_ == "tidak terdengar suara penelepon berbicara"


def test_reference_groups_compare_with_the_typical_call() -> None:
    ref = {"muffled_db": 3.0, "laughter_burst_share": 0.1}
    assert describe("handling", {"muffled_db": 9.0}, reference=ref)[0].startswith("muffled")
    assert describe("handling", {"muffled_db": 1.0}, reference=ref)[0] == (
        "sound quality of the line"
    )
    assert describe("laughter", {"laughter_burst_share": 0.4}, reference=ref)[0] == (
        "laughter-like bursts of sound"
    )
    assert describe("laughter", {"laughter_burst_share": 0.0}, reference=ref)[0] == (
        "no laughter-like sound"
    )


def test_duration_and_call_volume() -> None:
    assert describe("duration", _call(audio_duration_s=42.0), reference={})[0] == (
        "call lasted 42 s"
    )
    assert describe("duration", {"meta_log_duration": 0.0}, reference={})[0] == (
        "call just started"
    )
    assert describe("call_volume", _call(), reference={})[0] == "first call from this number"
    busy = _call(hist_calls_total=5.0, hist_calls_24h=3.0, hist_calls_1h=2.0)
    assert describe("call_volume", busy, reference={})[0] == (
        "2 earlier calls from this number in the last hour"
    )


def test_unknown_group_raises_key_error() -> None:
    with pytest.raises(KeyError, match="unknown reason group 'weather'"):
        describe("weather", _call(), reference={})


@pytest.mark.parametrize(
    "group",
    list(REASON_GROUPS),
)
def test_missing_features_never_crash(group: str) -> None:
    # The docstring promises any subset of features; missing ones read as NaN.
    en, id_ = describe(group, {}, reference={})
    assert en and id_


def test_advisory_in_both_languages() -> None:
    assert set(ADVISORY) == {"en", "id"}
    assert "silent caller" in ADVISORY["en"]
    assert ADVISORY["id"].startswith("Hanya saran")
