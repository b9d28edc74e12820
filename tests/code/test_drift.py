"""Drift against a model's reference (classifier.drift) and the reference train writes.

Arrays are seeded draws: the same distribution as the reference must read ok, a shifted
one must read shifted, and nothing is judged below the minimum number of calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from classifier.artifact import read_card
from classifier.drift import (
    ADVICE,
    MIN_CALLS,
    MONITORED_FEATURES,
    PSI_SHIFT,
    PSI_WATCH,
    bin_shares,
    check_reference,
    compare,
    flag_kind,
    flag_rate_test,
    histogram,
    histogram_psi,
    make_reference,
    monitored_values,
    psi,
)
from classifier.errors import InvalidParameterError
from tests.code.test_model import make_table
from training.train import train_table


def _calls(n: int, seed: int, *, silent: bool = False) -> pd.DataFrame:
    """Watched features of ``n`` calls: speech and pitch as in a centre's calls, or all
    silent (no speech, no pitch)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f: rng.normal(0.0, 1.0, n) for f in MONITORED_FEATURES})
    df["speech_ratio"] = 0.0 if silent else rng.beta(4, 3, n)
    df["longest_silence_ratio"] = 1.0 if silent else rng.beta(2, 6, n)
    df["pitch_median_hz"] = np.nan if silent else rng.normal(180, 40, n)
    df["hist_has_history"] = (rng.random(n) < 0.3).astype(float)
    return df


def _scored(n: int, seed: int, *, prank_share: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flags = np.where(
        rng.random(n) < prank_share,
        "possible_prank",
        np.where(rng.random(n) < 0.1, "likely_ghost", "none"),
    )
    return pd.DataFrame(
        {
            "p_prank": rng.beta(1, 6, n),
            "p_ghost": rng.beta(1, 6, n),
            "flag": flags,
            "label": rng.choice(["emergency", "prank", "ghost", "non_emergency"], n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return make_reference(_calls(5000, 1), _scored(800, 2), source="test")


def _window(calls: pd.DataFrame, scored: pd.DataFrame) -> dict[str, Any]:
    return {
        "features": {f: calls[f].to_numpy() for f in MONITORED_FEATURES},
        "scores": {s: scored[s].to_numpy() for s in ("p_prank", "p_ghost")},
        "flags": scored["flag"].tolist(),
    }


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    small, large = psi([0.5, 0.5], [0.6, 0.4]), psi([0.5, 0.5], [0.9, 0.1])
    assert 0 < small < PSI_WATCH < PSI_SHIFT < large
    # An empty bin counts as a small share, not an infinite log.
    assert np.isfinite(psi([0.0, 1.0], [1.0, 0.0]))


def test_histogram_merges_a_value_many_calls_share_and_counts_missing() -> None:
    values = [0.0] * 70 + list(np.linspace(0.1, 1.0, 20)) + [None] * 10
    h = histogram(values)
    assert h["edges"][0] == 0.0 and len(set(h["edges"])) == len(h["edges"])
    assert h["proportions"][0] == pytest.approx(0.7)  # (-inf, 0]
    assert h["missing"] == pytest.approx(0.1)
    assert sum(h["proportions"]) + h["missing"] == pytest.approx(1.0)
    assert histogram_psi(h, values) == pytest.approx(0.0, abs=1e-9)
    counts, n = bin_shares([0.0, 0.05, 2.0, float("nan")], h["edges"])
    assert n == 4 and counts[0] == 1 and counts[-1] == 1 and counts.sum() == 4


def test_flag_kinds_and_watched_values() -> None:
    assert [flag_kind(f) for f in ("none", "possible_prank", "likely_ghost", None)] == [
        None,
        "prank",
        "ghost",
        None,
    ]
    values = monitored_values({"speech_ratio": 0.5, "pitch_median_hz": float("nan")})
    assert list(values) == list(MONITORED_FEATURES)
    assert values["speech_ratio"] == 0.5 and values["pitch_median_hz"] is None
    assert values["snr_db"] is None  # absent


def test_calls_like_the_reference_read_ok(reference: dict[str, Any]) -> None:
    result = compare(reference, **_window(_calls(1000, 7), _scored(1000, 8)))
    assert result["status"] == "ok", result
    assert result["warning"] is None
    assert all(g["level"] in ("ok", "watch") for g in result["groups"])
    assert max(g["psi"] for g in result["groups"]) < PSI_SHIFT
    assert not any(r["shifted"] for r in result["flag_rates"])


def test_silent_calls_shift_the_silence_group_only(reference: dict[str, Any]) -> None:
    result = compare(reference, **_window(_calls(400, 7, silent=True), _scored(400, 8)))
    groups = {g["group"]: g for g in result["groups"]}
    assert result["status"] == "warning"
    assert groups["silence_speech"]["psi"] > PSI_SHIFT
    assert groups["silence_speech"]["level"] == "shift"
    assert groups["voice_pitch"]["level"] == "shift"  # no pitch in a silent call
    assert groups["level"]["level"] != "shift" and groups["history"]["level"] != "shift"
    assert result["warning"] == (
        f"calls differ from the model's training calls (silence_speech, voice_pitch): {ADVICE}"
    )


def test_a_doubled_flag_rate_is_a_shift(reference: dict[str, Any]) -> None:
    ref_rate = reference["scores"]["flag_rates"]["prank"]
    result = compare(
        reference, **_window(_calls(600, 7), _scored(600, 8, prank_share=3 * ref_rate))
    )
    prank = next(r for r in result["flag_rates"] if r["flag"] == "prank")
    assert prank["shifted"] and prank["ratio"] > 2 and prank["p_value"] < 0.01
    assert result["status"] == "warning"
    assert result["warning"] == f"flag rates have shifted: {ADVICE}"


def test_flag_rate_test_needs_both_the_ratio_and_the_evidence() -> None:
    assert flag_rate_test(30, 100, 0.10, 800)["shifted"]  # 3x, p tiny
    assert not flag_rate_test(3, 10, 0.10, 800)["shifted"]  # 3x, but 10 calls
    assert not flag_rate_test(150, 1000, 0.10, 800)["shifted"]  # beyond chance, only 1.5x
    assert flag_rate_test(0, 1000, 0.10, 800)["shifted"]  # stopped flagging
    # Twice a rate measured on 40 held-out calls (2 flagged) is within that rate's own
    # noise: the counts are compared, not the window with the rate taken as exact.
    assert not flag_rate_test(25, 250, 0.05, 40)["shifted"]
    assert flag_rate_test(25, 250, 0.05, 4000)["shifted"]
    # A reference rate of 0 is half a call in the reference: 5% of calls flagged is a shift.
    zero = flag_rate_test(50, 1000, 0.0, 800)
    assert zero["shifted"] and np.isfinite(zero["ratio"])


def test_below_the_minimum_nothing_is_judged(reference: dict[str, Any]) -> None:
    n = MIN_CALLS - 1
    result = compare(reference, **_window(_calls(n, 7, silent=True), _scored(n, 8)))
    assert result["status"] == "insufficient_data"
    assert result["warning"] is None and result["calls"] == n
    assert all(g["psi"] is None for g in result["groups"])
    assert all(r["p_value"] is None and not r["shifted"] for r in result["flag_rates"])


def test_no_reference_and_an_unreadable_one(reference: dict[str, Any]) -> None:
    window = _window(_calls(300, 7), _scored(300, 8))
    assert compare(None, **window)["status"] == "no_reference"
    broken = {**reference, "features": {"histograms": {"speech_ratio": {"edges": [0.5]}}}}
    with pytest.raises(InvalidParameterError, match="unreadable"):
        compare(broken, **window)
    with pytest.raises(InvalidParameterError, match="format 99"):
        check_reference({**reference, "version": 99})


def test_train_writes_the_reference_into_the_card(tmp_path: Path) -> None:
    table = make_table(300, seed=3).assign(source="0")
    result = train_table(table, tmp_path / "m", manifests=["x.csv"], params={"max_iter": 10})
    ref = check_reference(read_card(tmp_path / "m")["reference"])
    split = result.card["split"]
    assert ref["features"]["calls"] == split["train_calls"]
    assert ref["scores"]["calls"] == split["test_calls"]
    assert set(ref["features"]["histograms"]) == set(MONITORED_FEATURES)
    # The held-out flag rates are those of the report's held-out flags.
    scores = pd.read_csv(tmp_path / "m" / "report" / "scores.csv")
    pranks = scores["flag"].astype(str).str.endswith("_prank").mean()
    assert ref["scores"]["flag_rates"]["prank"] == pytest.approx(pranks, abs=1e-6)
    # The training calls read as themselves: no drift.
    train_calls = table.iloc[: split["train_calls"]]  # any sample of the same table
    psis = [
        histogram_psi(ref["features"]["histograms"][f], train_calls[f])
        for f in ("speech_ratio", "pitch_median_hz")
    ]
    assert max(psis) < PSI_SHIFT


def test_model_reference_adds_a_reference_to_a_model_folder(tmp_path: Path) -> None:
    """`callsift model reference` on a model whose card has none: the reference is made
    from the manifest's calls, the card rewritten, the model file untouched."""
    import hashlib
    import json

    from typer.testing import CliRunner

    from callsift import app
    from classifier.artifact import load_model
    from training.simulate import simulate_corpus

    model_dir = tmp_path / "m"
    train_table(
        make_table(300, seed=5).assign(source="0"),
        model_dir,
        manifests=["x.csv"],
        params={"max_iter": 10},
    )
    card = json.loads((model_dir / "card.json").read_text())
    del card["reference"]
    (model_dir / "card.json").write_text(json.dumps(card))
    digest = hashlib.sha256((model_dir / "model.joblib").read_bytes()).hexdigest()
    corpus = simulate_corpus(
        tmp_path / "sim", preset="balanced", n_calls=24, seed=7, progress=False
    )

    result = CliRunner().invoke(
        app, ["model", "reference", str(model_dir), str(corpus), "--jobs", "1"]
    )
    assert result.exit_code == 0, result.output
    ref = check_reference(read_card(model_dir)["reference"])
    assert ref["features"]["calls"] == ref["scores"]["calls"] == 24
    assert "not the training calls" in ref["source"]
    assert "reference of 24 calls written to" in result.output
    assert hashlib.sha256((model_dir / "model.joblib").read_bytes()).hexdigest() == digest
    assert load_model(model_dir).card["reference"] == ref  # still loads, with it
    # The model's own flags on those calls are the reference's rates.
    from training.evaluate import score_table
    from training.features import extract_features

    table, _ = extract_features(corpus, n_jobs=1, progress=False)
    flags = score_table(load_model(model_dir), table, explain=False)["flag"]
    assert ref["scores"]["flag_rates"]["ghost"] == pytest.approx(
        flags.str.endswith("_ghost").mean(), abs=1e-6
    )


def test_model_reference_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    from classifier.errors import CallsiftError
    from training.reference import add_reference

    (tmp_path / "empty").mkdir()
    with pytest.raises(CallsiftError):
        add_reference(tmp_path / "empty", ["nowhere/manifest.csv"])
    with pytest.raises(InvalidParameterError, match="no manifest"):
        add_reference(tmp_path / "empty", [])
