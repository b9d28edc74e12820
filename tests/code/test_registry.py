"""MLflow tracking, registry and promotion (classifier/registry.py, training/registry.py,
training/promote.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from classifier.artifact import load_model, save_model
from classifier.errors import InvalidManifestError, InvalidParameterError, RegistryError
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.model import CallClassifier
from classifier.registry import download_model
from classifier.scoring import PRE_ANSWER_FEATURES
from training import registry
from training.promote import Decision, _decide_and_record, decide, flag_counts

_SHIFTED = ("speech_ratio", "whisper_ratio", "meta_withheld", "hist_prank", "hist_calls_24h")


def _table(n_per_class: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.asarray(LABELS, dtype=object), n_per_class)
    X = rng.normal(size=(labels.size, len(FEATURE_NAMES)))
    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    for k, label in enumerate(LABELS):
        # Each class moves a different subset of columns, some of them pre-answer ones.
        frame.loc[labels == label, _SHIFTED[k : k + 2]] += 2.5
    frame.insert(0, "label", labels)
    frame.insert(0, "caller_id", [f"c{i % 97}" for i in range(labels.size)])
    frame.insert(0, "call_id", [f"call{i}" for i in range(labels.size)])
    return frame


def _fit_model(folder: Path, table: pd.DataFrame, *, version: str, seed: int) -> Path:
    y, groups = table["label"].tolist(), table["caller_id"].tolist()
    call = CallClassifier(max_iter=20, n_folds=2, random_state=seed).fit(table, y, groups)
    pre = CallClassifier(
        features=PRE_ANSWER_FEATURES, max_iter=20, n_folds=2, random_state=seed
    ).fit(table, y, groups)
    report = folder.parent / f"{folder.name}-report"
    report.mkdir()
    (report / "report.md").write_text("# report\n", encoding="utf-8")
    (report / "metrics.json").write_text(json.dumps({"calls": len(table)}), encoding="utf-8")
    # A 1x1 PNG: the report's figures must reach MLflow as files of their own.
    (report / "scores.png").write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
    )
    return save_model(
        folder,
        call=call,
        pre_answer=pre,
        card={"name": "t", "version": version, "data_fingerprint": "x"},
        extra_files={"report": report},
    )


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame) -> Path:
    return _fit_model(tmp_path_factory.mktemp("m") / "model", table, version="t-1", seed=0)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_db: Path) -> str:
    # Creating MLflow's tables takes seconds; each test gets a copy of one empty store.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    shutil.copyfile(empty_mlflow_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _log(model_dir: Path, table: pd.DataFrame, uri: str, **kw: object) -> registry.RegisteredModel:
    return registry.log_training_run(
        model_dir,
        params={"max_iter": 20, "split": {"test_share": 0.2}, "none": None},
        metrics={"prank_auc": 0.9, "undefined": float("nan")},
        data_fingerprint="fp-123",
        code_version="abc123",
        input_example=table,
        tracking_uri=uri,
        **kw,  # type: ignore[arg-type]
    )


# --- tracking URI ----------------------------------------------------------------------


def test_resolve_tracking_uri_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = registry.resolve_tracking_uri()
    assert default == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert (tmp_path / "mlruns").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert registry.resolve_tracking_uri() == "http://mlflow.example:5000"
    assert registry.resolve_tracking_uri("sqlite:///x/y.db") == "sqlite:///x/y.db"
    assert (tmp_path / "x").is_dir()  # SQLite does not create the folder itself


# --- logging and registry -------------------------------------------------------------


def test_log_training_run_registers_challenger(
    store: str, tmp_path: Path, model_dir: Path, table: pd.DataFrame
) -> None:
    import mlflow
    from mlflow import MlflowClient

    reg = _log(model_dir, table, store)
    assert (reg.name, reg.version) == ("callsift", "1")
    assert registry.alias_version("challenger", tracking_uri=store) == "1"
    assert registry.alias_version("champion", tracking_uri=store) is None

    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(reg.run_id)
    assert run.data.params["max_iter"] == "20"
    assert run.data.params["split.test_share"] == "0.2"
    assert run.data.metrics == {"prank_auc": 0.9}  # NaN left out
    assert run.data.tags["data_fingerprint"] == "fp-123"
    assert run.data.tags["code_version"] == "abc123"
    assert run.data.tags["callsift_model_version"] == "t-1"
    top = {a.path for a in client.list_artifacts(reg.run_id)}
    assert "card.json" in top
    report = {a.path for a in client.list_artifacts(reg.run_id, "report")}
    assert report == {"report/report.md", "report/metrics.json", "report/scores.png"}
    # Artifacts of the local store sit beside the database, not in the repository.
    assert (tmp_path / "artifacts").is_dir()

    mv = client.get_model_version("callsift", "1")
    assert mv.tags["data_fingerprint"] == "fp-123"
    info = mlflow.models.get_model_info(f"models:/callsift/{reg.version}")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert [c.name for c in info.signature.outputs.inputs] == [
        "p_emergency",
        "p_non_emergency",
        "p_prank",
        "p_ghost",
        "flag",
        "reasons",
    ]
    # The session restores MLflow's process-wide state.
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_download_gives_identical_scores(
    store: str, tmp_path: Path, model_dir: Path, table: pd.DataFrame
) -> None:
    import mlflow

    _log(model_dir, table, store)
    local = download_model("challenger", tracking_uri=store, dst=tmp_path / "dl")
    assert local.is_dir() and (local / "card.json").is_file()
    X = table.iloc[::7]
    cols = ["p_emergency", "p_non_emergency", "p_prank", "p_ghost"]

    def frame(folder: Path) -> pd.DataFrame:
        return pd.DataFrame([s.as_dict() for s in load_model(folder).score_frame(X)])

    original, downloaded = frame(model_dir), frame(local)
    assert np.array_equal(original[cols].to_numpy(), downloaded[cols].to_numpy())
    assert original["flag"].tolist() == downloaded["flag"].tolist()

    # The same version by number and by full URI.
    again = download_model("models:/callsift/1", tracking_uri=store)
    assert (again / "model.joblib").read_bytes() == (model_dir / "model.joblib").read_bytes()

    mlflow.set_tracking_uri(store)
    try:
        served = mlflow.pyfunc.load_model("models:/callsift@challenger").predict(
            X.loc[:, list(FEATURE_NAMES)]
        )
    finally:
        mlflow.set_tracking_uri(None)
    assert np.array_equal(served[cols].to_numpy(), original[cols].to_numpy())
    assert served["flag"].tolist() == original["flag"].tolist()
    assert served["reasons"].map(lambda r: isinstance(r, str)).all()


def test_unknown_alias_and_version_raise(
    store: str, tmp_path: Path, model_dir: Path, table: pd.DataFrame
) -> None:
    with pytest.raises(RegistryError, match="no model named 'callsift'"):
        download_model("champion", tracking_uri=store)
    _log(model_dir, table, store)
    with pytest.raises(RegistryError, match=r"alias 'champion'.*aliases: challenger -> 1"):
        download_model("champion", tracking_uri=store)
    with pytest.raises(RegistryError, match=r"version 7 .*versions: 1"):
        download_model("7", tracking_uri=store)
    with pytest.raises(RegistryError, match="version 9"):
        registry.set_alias("champion", "9", tracking_uri=store)
    with pytest.raises(InvalidParameterError, match="not understood"):
        download_model("models:/callsift", tracking_uri=store)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InvalidParameterError, match="not empty"):
        download_model("1", tracking_uri=store, dst=tmp_path / "full")


def test_log_rejects_incomplete_example(store: str, model_dir: Path, table: pd.DataFrame) -> None:
    with pytest.raises(InvalidParameterError, match=f"lacks 1 of the {len(FEATURE_NAMES)}"):
        _log(model_dir, table.drop(columns=["speech_ratio"]), store)
    with pytest.raises(InvalidParameterError, match="no rows"):
        _log(model_dir, table.iloc[:0], store)


# --- decision -------------------------------------------------------------------------


def _counts(*, e: int, caught_prank: int, caught_ghost: int, n: int = 300) -> dict[str, float]:
    return {
        "emergency": n,
        "emergency_flagged": e,
        "prank": 40,
        "prank_caught": caught_prank,
        "ghost": 30,
        "ghost_caught": caught_ghost,
    }


def test_decide_without_champion_promotes() -> None:
    d = decide(None, _counts(e=3, caught_prank=10, caught_ghost=5))
    assert d.promote
    assert d.reasons[0] == "no champion yet"
    assert "3 of 300 emergency" in d.reasons[1] and "15 of 70" in d.reasons[1]
    assert d.champion == {}


@pytest.mark.parametrize(
    ("champ", "chal", "promote", "expected"),
    [
        # fewer emergency calls flagged and more caught
        (
            (2, 10, 10),
            (1, 12, 10),
            True,
            ["flags 1 of 300 emergency calls, champion 2", "22 of 70"],
        ),
        # same emergency flags, more caught
        ((1, 10, 10), (1, 10, 11), True, ["champion 1: no more", "21 of 70", "champion 20: more"]),
        # more emergency flagged, even though it catches more
        ((1, 10, 10), (2, 30, 30), False, ["flags 2 of 300 emergency calls, champion 1: more"]),
        # same emergency flags but fewer caught
        ((1, 10, 10), (1, 9, 10), False, ["19 of 70 prank and ghost calls, champion 20: not"]),
        # equal caught
        ((1, 10, 10), (1, 12, 8), False, ["20 of 70 prank and ghost calls, champion 20: not"]),
    ],
)
def test_decide_branches(
    champ: tuple[int, int, int], chal: tuple[int, int, int], promote: bool, expected: list[str]
) -> None:
    d = decide(
        _counts(e=champ[0], caught_prank=champ[1], caught_ghost=champ[2]),
        _counts(e=chal[0], caught_prank=chal[1], caught_ghost=chal[2]),
    )
    assert d.promote is promote
    text = " | ".join(d.reasons)
    for part in expected:
        assert part in text
    assert ("not promoted" in text) is (not promote)


def test_decide_refuses_counts_of_different_calls() -> None:
    with pytest.raises(InvalidParameterError, match="different calls"):
        decide(
            _counts(e=1, caught_prank=1, caught_ghost=1, n=300),
            _counts(e=1, caught_prank=2, caught_ghost=1, n=280),
        )


def test_flag_counts() -> None:
    scored = pd.DataFrame(
        {
            "label": ["emergency", "emergency", "prank", "prank", "ghost", "non_emergency", ""],
            "flag": [
                "none",
                "possible_ghost",
                "likely_prank",
                "possible_ghost",
                "possible_ghost",
                "possible_prank",
                "likely_prank",
            ],
        }
    )
    c = flag_counts(scored)
    assert c["calls"] == 6  # the unlabelled call is skipped
    assert (c["emergency"], c["emergency_flagged"], c["emergency_flagged_share"]) == (2, 1, 0.5)
    assert (c["prank"], c["prank_caught"]) == (2, 1)  # a prank flagged as ghost is not caught
    assert (c["ghost"], c["ghost_caught"], c["caught"]) == (1, 1, 2)
    assert c["non_emergency_flagged"] == 1
    with pytest.raises(InvalidParameterError, match="no labelled call"):
        flag_counts(scored.iloc[6:])
    with pytest.raises(InvalidParameterError, match="unknown flags"):
        flag_counts(scored.assign(flag="maybe"))


def _scored(labels: list[str], flags: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "flag": flags})


def _version_tags(store: str, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store, registry_uri=store)
    return dict(client.get_model_version("callsift", version).tags)


def test_decide_and_record_moves_alias_and_tags(
    store: str, model_dir: Path, table: pd.DataFrame
) -> None:
    labels = ["emergency"] * 4 + ["prank"] * 2 + ["ghost"] * 2
    weak = _scored(labels, ["none"] * 4 + ["possible_prank"] + ["none"] * 3)
    strong = _scored(labels, ["none"] * 4 + ["possible_prank"] * 2 + ["likely_ghost", "none"])
    noisy = _scored(labels, ["likely_prank"] + ["none"] * 3 + ["possible_prank"] * 4)

    def record(chal: pd.DataFrame, champ: pd.DataFrame | None, *, dry_run: bool) -> Decision:
        return _decide_and_record(
            chal,
            champ,
            challenger_version=registry.alias_version("challenger", tracking_uri=store) or "",
            champion_version=registry.alias_version("champion", tracking_uri=store),
            tracking_uri=store,
            model_name="callsift",
            dry_run=dry_run,
        )

    _log(model_dir, table, store)  # version 1
    assert record(weak, None, dry_run=False).promote
    assert registry.alias_version("champion", tracking_uri=store) == "1"

    _log(model_dir, table, store)  # version 2, now the challenger
    assert record(strong, weak, dry_run=True).promote
    assert registry.alias_version("champion", tracking_uri=store) == "1"  # dry run
    assert "promotion_decision" not in _version_tags(store, "2")

    refused = record(noisy, weak, dry_run=False)
    assert not refused.promote
    assert registry.alias_version("champion", tracking_uri=store) == "1"
    tags = _version_tags(store, "2")
    assert tags["promotion_decision"] == "not promoted"
    assert "flags 1 of 4 emergency calls, champion 0" in tags["promotion_reasons"]

    accepted = record(strong, weak, dry_run=False)
    assert accepted.promote
    assert (accepted.challenger_version, accepted.champion_version) == ("2", "1")
    assert registry.alias_version("champion", tracking_uri=store) == "2"
    tags = _version_tags(store, "2")
    assert tags["promotion_decision"] == "promoted"
    assert tags["promotion_champion"] == "1"


def test_promote_refuses_unlabelled_manifest(store: str, tmp_path: Path) -> None:
    from training.promote import promote

    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(8000, dtype=np.float32), 8000)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "call_id,caller_id,started_at,duration_s,audio_path,label\n"
        "c1,+6281200000001,2025-01-01T10:00:00+08:00,1.0,a.wav,emergency\n"
        "c2,+6281200000002,2025-01-01T11:00:00+08:00,1.0,a.wav,\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidManifestError, match="1 of 2 calls have no label"):
        promote(manifest, tracking_uri=store)


@pytest.mark.slow
def test_promote_command_end_to_end(
    store: str, tmp_path: Path, model_dir: Path, table: pd.DataFrame
) -> None:
    import typer
    from typer.testing import CliRunner

    from training.promote import promote_command
    from training.simulate import simulate_corpus

    manifest = simulate_corpus(
        tmp_path / "eval", preset="balanced", n_calls=16, seed=1, n_jobs=2, progress=False
    )
    _log(model_dir, table, store)
    registry.set_alias("champion", "1", tracking_uri=store)
    _log(model_dir, table, store)  # version 2: the same model, so it cannot catch more

    app = typer.Typer()
    app.command()(promote_command)
    result = CliRunner().invoke(app, [str(manifest), "--tracking-uri", store, "--jobs", "2"])
    assert result.exit_code == 1, result.output
    assert "not promoted: the champion stays version 1" in result.output
    assert "emergency calls flagged" in result.output
    assert registry.alias_version("champion", tracking_uri=store) == "1"
    tags = _version_tags(store, "2")
    assert tags["promotion_decision"] == "not promoted"
    assert "of 4 emergency calls" in tags["promotion_reasons"]
