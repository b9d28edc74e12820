"""Drift in the service (issue 16, point 4): calls scored against the model's reference.

A small model is trained on a synthetic table (its card carries the reference, as every
``callsift train`` writes it); silent recordings posted through the real upload path
move the silence and speech features far from its training calls. Below
``CALLSIFT_DRIFT_MIN_CALLS`` nothing is judged; from it, ``GET /v1/model`` says warning
and ``/metrics`` carries the gauges. On SQLite and PostgreSQL (the watched features of a
silent call include missing values, which PostgreSQL's JSON must store as null).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from api.service import LoadedModel, ModelHolder, load_scoring_model
from classifier.drift import ADVICE, MONITORED_FEATURES, PSI_SHIFT, flag_kind
from classifier.scoring import ScoringModel
from tests.api.conftest import BACKENDS
from tests.api.test_app_calls import Env, running_env
from tests.code.test_model import make_table
from training.train import train_table

MIN_CALLS = 12


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drift-model") / "small"
    table = make_table(300, seed=3).assign(source="0")
    train_table(table, out, manifests=["synthetic/manifest.csv"], params={"max_iter": 10})
    return out


@pytest.fixture(scope="module")
def small_model(model_dir: Path) -> LoadedModel:
    return load_scoring_model(model_dir=model_dir)


def _holder(loaded: LoadedModel) -> ModelHolder:
    holder = ModelHolder()
    holder.set_for_tests(loaded)
    return holder


@pytest.fixture(params=BACKENDS)
def env(
    request: pytest.FixtureRequest, tmp_path: Path, small_model: LoadedModel, monkeypatch: Any
) -> Iterator[Env]:
    # running_env serves the shipped model; this file serves the small one.
    monkeypatch.setattr(
        "tests.api.test_app_calls.preloaded_holder", lambda **kw: _holder(small_model)
    )
    with running_env(request.param, tmp_path, drift_min_calls=MIN_CALLS, drift_cache_s=0) as e:
        yield e


def silent_wav(seed: int, seconds: float = 4.0) -> bytes:
    """An open line with nobody on it: faint noise only."""
    rng = np.random.default_rng(seed)
    y = 1e-3 * rng.standard_normal(int(seconds * 8000))
    buffer = io.BytesIO()
    sf.write(buffer, y, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _drift(env: Env) -> dict[str, Any]:
    response = env.client.get("/v1/model", headers=env.auth("supervisor"))
    assert response.status_code == 200, response.text
    return response.json()["drift"]


def _post_silent(env: Env, seeds: range) -> list[str]:
    flags = []
    for seed in seeds:
        call = env.register()
        scored = env.upload(call["call_id"], silent_wav(seed))
        assert scored.status_code == 200 and scored.json()["stored"], scored.text
        flags.append(scored.json()["flag"])
    return flags


def _gauge(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def test_silent_calls_turn_drift_to_warning(env: Env) -> None:
    first = _drift(env)
    assert first["status"] == "insufficient_data" and first["calls"] == 0
    assert first["min_calls"] == MIN_CALLS and first["window_days"] == 7

    flags = _post_silent(env, range(MIN_CALLS - 1))
    env.register()  # scored before answer only: not a call the model heard
    below = _drift(env)
    assert below["status"] == "insufficient_data", below
    assert below["calls"] == MIN_CALLS - 1 and below["warning"] is None
    assert all(g["psi"] is None for g in below["groups"])
    assert f"drift is judged from {MIN_CALLS}" in below["detail"]

    flags += _post_silent(env, range(100, 101))
    drift = _drift(env)
    assert drift["status"] == "warning", drift
    groups = {g["group"]: g for g in drift["groups"]}
    assert groups["silence_speech"]["psi"] > PSI_SHIFT
    assert groups["silence_speech"]["level"] == "shift"
    assert drift["warning"].endswith(ADVICE)
    # The rates are those of the flags the uploads answered with.
    for row in drift["flag_rates"]:
        flagged = sum(flag_kind(f) == row["flag"] for f in flags)
        assert row["calls"] == MIN_CALLS and row["flagged"] == flagged
        assert row["rate"] == pytest.approx(flagged / MIN_CALLS)
    assert sum(d["calls"] for d in drift["days"]) == MIN_CALLS

    # Stored beside each score: the watched features, a silent call's missing pitch as null.
    with env.store.engine.connect() as conn:
        from sqlalchemy import text

        stored = [
            json.loads(v) if isinstance(v, str) else v
            for (v,) in conn.execute(text("SELECT drift_features FROM calls")).all()
        ]
    heard = [s for s in stored if s is not None]
    assert len(heard) == MIN_CALLS and set(heard[0]) == set(MONITORED_FEATURES)
    assert all(s["pitch_median_hz"] is None and s["speech_ratio"] == 0.0 for s in heard)

    metrics = env.client.get("/metrics").text
    psi = _gauge(metrics, "callsift_drift_psi", group="silence_speech")
    assert psi is not None and psi == pytest.approx(groups["silence_speech"]["psi"])
    assert _gauge(metrics, "callsift_drift_status", status="warning") == 1.0
    assert _gauge(metrics, "callsift_drift_status", status="ok") == 0.0
    assert _gauge(metrics, "callsift_drift_calls") is None  # no labels: matched below
    assert re.search(rf"^callsift_drift_calls {MIN_CALLS}\.0$", metrics, re.M)
    ghost = next(r for r in drift["flag_rates"] if r["flag"] == "ghost")
    assert _gauge(metrics, "callsift_flag_rate", flag="ghost", day="window") == pytest.approx(
        ghost["rate"]
    )
    assert _gauge(metrics, "callsift_flag_rate", flag="ghost", day=drift["days"][0]["day"])
    assert _gauge(metrics, "callsift_flag_rate_reference", flag="ghost") == pytest.approx(
        ghost["reference"]
    )


def test_a_model_without_reference_says_how_to_add_one(
    tmp_path: Path, small_model: LoadedModel, monkeypatch: Any
) -> None:
    # The shipped model of 2026-12-06 has no reference in its card.
    card = {k: v for k, v in small_model.model.card.items() if k != "reference"}
    m = small_model.model
    loaded = LoadedModel(
        model=ScoringModel(call=m.call, pre_answer=m.pre_answer, card=card),
        source="test",
        loaded_at=small_model.loaded_at,
    )
    monkeypatch.setattr("tests.api.test_app_calls.preloaded_holder", lambda **kw: _holder(loaded))
    with running_env("sqlite", tmp_path, drift_min_calls=1, drift_cache_s=0) as env:
        _post_silent(env, range(2))
        drift = _drift(env)
        metrics = env.client.get("/metrics").text
    assert drift["status"] == "no_reference", drift
    assert "callsift model reference" in drift["detail"]
    assert drift["calls"] == 2 and len(drift["days"]) == 1 and drift["groups"] == []
    assert _gauge(metrics, "callsift_drift_status", status="no_reference") == 1.0


def test_a_live_streams_final_score_stores_its_features(
    tmp_path: Path, small_model: LoadedModel, monkeypatch: Any
) -> None:
    """The features a stream's final score came from are stored, as an upload's are."""
    from tests.api.test_stream import _closed_with, _connect, _frames

    monkeypatch.setattr(
        "tests.api.test_app_calls.preloaded_holder", lambda **kw: _holder(small_model)
    )
    wav = silent_wav(seed=9, seconds=3.0)
    with running_env("sqlite", tmp_path, drift_min_calls=1, drift_cache_s=0) as env:
        streamed = env.register()
        with _connect(env, streamed["call_id"], encoding="pcm16") as ws:
            assert ws.receive_json()["type"] == "ready"
            for frame in _frames(wav, "PCM_16"):
                ws.send_bytes(frame)
            ws.send_text('{"type": "end"}')
            code, messages = _closed_with(ws)
        assert code == 1000 and messages[-1]["stored"] is True
        uploaded = env.register()
        assert env.upload(uploaded["call_id"], wav).status_code == 200
        with env.store.engine.connect() as conn:
            from sqlalchemy import text

            rows = dict(
                conn.execute(
                    text(
                        "SELECT call_id, drift_features FROM calls WHERE drift_features IS NOT NULL"
                    )
                ).all()
            )
        assert _drift(env)["calls"] == 2
    live, posted = (
        json.loads(v) if isinstance(v, str) else v
        for v in (rows[streamed["call_id"]], rows[uploaded["call_id"]])
    )
    assert set(live) == set(MONITORED_FEATURES)
    for name in MONITORED_FEATURES:
        assert live[name] == pytest.approx(posted[name], abs=1e-6, nan_ok=True), name
