"""`callsift adapt` end to end on small simulated corpora, and its refusals.

A tiny base model is trained on one simulated corpus (which also serves as the simulated
corpus of the retrained candidates); the centre is another preset and seed. Every run,
refused or not, must leave the base model's files byte for byte as they were.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callsift import main
from classifier.artifact import load_model, read_card
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.model import CallClassifier, allowed_flags, flag_rate_upper_bound
from training.simulate import simulate_corpus
from training.train import train

FAST = ["--max-iter", "8", "--weights", "1", "--no-mlflow", "--jobs", "1"]


@pytest.fixture(scope="module")
def cache(feature_cache: Path) -> Path:
    """The run's feature cache: the shared corpus is featured once (tests/conftest.py)."""
    return feature_cache


@pytest.fixture(scope="module")
def sim(small_corpus: Path) -> Path:
    """The base model's training corpus, and the retrained candidates' simulated corpus:
    the run's shared small corpus (balanced, 100 calls, seed 31; tests/conftest.py)."""
    return small_corpus


NO_CEPSTRA = tuple(f for f in FEATURE_NAMES if not f.startswith("mfcc_"))


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A centre's reviewed calls: another preset and seed (WIB, +07:00)."""
    out = tmp_path_factory.mktemp("adapt-centre") / "jak"
    return simulate_corpus(out, preset="balanced", n_calls=112, seed=32, progress=False)


@pytest.fixture(scope="module")
def base(sim: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adapt-base") / "base"
    train(
        [sim],
        out,
        cache_dir=cache,
        n_jobs=1,
        test_callers=0.4,
        test_after=0.6,
        # The retrained candidates fold alike, and read what the base reads (here a
        # subset of the features: no cepstra).
        params={"max_iter": 8, "n_folds": 2, "features": list(NO_CEPSTRA)},
        prefixes=(2.0, 10.0),
        progress=False,
    )
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rewrite(manifest: Path, dest: Path, edit: Callable[[list[dict]], list[dict]]) -> Path:
    """A copy of a manifest (audio paths made absolute) with rows changed by ``edit``."""
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    rows = edit(rows)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for r in rows:
        r["audio_path"] = str((manifest.parent / r["audio_path"]).resolve())
    with open(dest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return dest


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    """Run ``callsift`` as a user does (errors: one line, exit code 2)."""
    monkeypatch.setattr(sys, "argv", ["callsift", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    out: Path,
    *args: str,
) -> str:
    before = _digest(base)
    code, _, err = _cli(monkeypatch, capsys, "adapt", *args, "--out", str(out), *FAST)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert not out.exists()
    assert _digest(base) == before
    return err


def test_adapt_end_to_end(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    sim: Path,
    centre: Path,
    cache: Path,
    empty_mlflow_db: Path,
    tmp_path: Path,
) -> None:
    def unlabel(rows: list[dict]) -> list[dict]:
        for r in rows[5:8]:
            r["label"] = ""
        return rows

    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", unlabel)
    out = tmp_path / "adapted"
    shutil.copyfile(empty_mlflow_db, tmp_path / "mlflow.db")  # tables made: seconds saved
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    before = _digest(base)
    args = ["adapt", str(manifest), "--out", str(out), "--base", str(base), "--sim", str(sim)]
    args += [
        "--work",
        str(tmp_path / "work"),
        "--cache",
        str(cache),
        "--max-iter",
        "8",
        "--jobs",
        "1",
    ]
    code, stdout, err = _cli(
        monkeypatch, capsys, *args, "--weights", "1", "--tracking-uri", tracking
    )
    assert code == 0, err
    assert "warning: " in err and "3 of 112 calls have no label and are skipped" in err
    # A few dozen validation calls cannot show a 1% budget, and the command says so.
    assert "cannot show the 1% budget" in err and "callsift promote" in err
    assert _digest(base) == before

    model = load_model(out)
    card = read_card(out)
    base_card = read_card(base)
    assert card["adapted_from"]["version"] == base_card["version"]
    assert card["adapted_from"]["data_fingerprint"] == base_card["data_fingerprint"]
    td = card["training_data"]
    assert td["centre_labelled_calls"] == 109 and td["unlabelled_skipped"] == 3
    assert sum(td["centre_class_counts"].values()) == 109
    assert card["split"]["callers_in_both"] == 0
    assert card["split"]["test_calls"] >= 109 // 4
    a = card["adaptation"]
    # Chosen on the validation quarter, then fitted on every call of the centre: all
    # its emergency calls set the thresholds, and a later adapt refuses all its calls.
    assert a["calibration"] == "sigmoid" and a["fitted_on_calls"] == td["centre_labelled_calls"]
    assert len(td["call_keys"]) == td["centre_labelled_calls"]
    ne = a["bound"]["calls"]["non_emergency"]
    assert a["non_emergency_target"] == 0.05 and ne["flagged"] <= ne["allowed"]
    assert ne["calls"] == td["centre_class_counts"]["non_emergency"]
    n_e = a["bound"]["calls"]["emergency_calls"]
    assert n_e > a["validated_bound"]["calls"]["emergency_calls"]
    assert f"above all {n_e} of the centre's emergency calls" in err
    names = [c["name"] for c in a["candidates"]]
    assert names == ["recalibrated", "retrained (weight 1)", "base (not adapted)"]
    assert a["candidate"] in names[:2] and a["confidence"] == 0.95
    for c in a["candidates"]:
        assert 0 <= c["emergency_flagged"] <= c["emergency"] > 0
        assert 0.0 <= c["caught_share"] <= 1.0
    # The thresholds kept every emergency call of the adapting side unflagged: too few
    # to show 1% at 95%, which the card says.
    bound = a["bound"]["calls"]
    assert bound["possible"]["allowed"] == 0 and bound["possible"]["flagged"] == 0
    assert bound["possible"]["shown"] is False and bound["possible"]["upper_bound"] > 0.01
    # Early scores: too few of the centre's emergency rows per time bucket, so those
    # buckets keep the thresholds of the model recalibrated.
    assert a["bound"]["kept_buckets"] == ["2", "10"]
    if a["kind"] == "recalibrated":  # booster untouched: the base's own trees
        assert card["params"]["max_iter"] == base_card["params"]["max_iter"]
        assert a["weight"] is None
        for b in ("2", "10"):
            assert (
                card["thresholds"]["call_by_prefix"][b]
                == (base_card["thresholds"]["call_by_prefix"][b])
            )
    else:
        assert a["weight"] == 1.0
    assert card["model_features"] == base_card["model_features"] == list(NO_CEPSTRA)
    # Learning curve: 25, 50, ... earliest calls, then all of the adapting side.
    sizes = [p["centre_calls"] for p in a["curve"] if p["candidate"] == "recalibrated"]
    assert sizes[:2] == [25, 50] and sizes[-1] == card["split"]["train_calls"]
    report = out / "report"
    assert (report / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    text = (report / "adapt.md").read_text()
    assert "Clopper-Pearson" in text and "learning_curve.png" in text
    assert "at most 5.0% of the centre's non-emergency calls are flagged" in text
    assert base_card["version"] in text and "(chosen)" in text
    assert (report / "report.md").is_file() and (out / "baselines.joblib").is_file()
    assert f"written to {out}" in stdout
    # The drift reference describes the centre's calls.
    assert card["reference"]["features"]["calls"] == td["centre_labelled_calls"]
    assert card["reference"]["scores"]["calls"] == card["split"]["test_calls"]
    # Scores like any model folder.
    assert model.call.thresholds_ == card["thresholds"]["call"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    version = client.get_model_version_by_alias("callsift", "challenger")
    assert version.tags["adapted_from"] == base_card["version"]
    assert version.tags["callsift_model_version"] == card["version"]
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias("callsift", "champion")  # promotion is not ours

    # Adapting the adapted model (from the registry) on the same calls is refused: it
    # learnt from them.
    again = tmp_path / "again"
    err = _refused(
        monkeypatch,
        capsys,
        out,
        again,
        str(manifest),
        "--base",
        "models:/callsift@challenger",
        "--tracking-uri",
        tracking,
        "--sim",
        str(sim),
    )
    assert "were used to train the base model " + card["version"] in err and "line " in err


def test_too_few_calls_are_refused_with_counts(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", lambda rows: rows[:60])
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(manifest), "--base", str(base))
    assert "hold 60 labelled calls (" in err and "at least 100 labelled calls" in err
    assert "label 40 more labelled calls" in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--calibration", "platt", "calibration is 'platt'; expected one of sigmoid, isotonic"),
        (
            "--non-emergency-target",
            "1.5",
            "non-emergency target is 1.5; expected a share in [0, 1]",
        ),
    ],
)
def test_bad_option_values_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
    option: str,
    value: str,
    message: str,
) -> None:
    err = _refused(
        monkeypatch, capsys, base, tmp_path / "o", str(centre), "--base", str(base), option, value
    )
    assert message in err


def test_too_few_of_a_class_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    def few_ghosts(rows: list[dict]) -> list[dict]:
        ghosts = [r for r in rows if r["label"] == "ghost"]
        for r in ghosts[4:]:
            r["label"] = "non_emergency"
        return rows

    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", few_ghosts)
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(manifest), "--base", str(base))
    assert "ghost 4)" in err and "6 more ghost" in err


def test_unlabelled_rows_are_skipped_then_too_few_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    def unlabel(rows: list[dict]) -> list[dict]:
        for r in rows[:40]:
            r["label"] = ""
        return rows

    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", unlabel)
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(manifest), "--base", str(base))
    assert "warning: " in err and "40 of 112 calls have no label and are skipped" in err
    assert "hold 72 labelled calls" in err


def test_unknown_label_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    def odd(rows: list[dict]) -> list[dict]:
        rows[3]["label"] = "hoax"
        return rows

    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", odd)
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(manifest), "--base", str(base))
    assert "unknown label 'hoax'" in err and "line 5" in err


def test_duplicate_call_ids_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    def dup(rows: list[dict]) -> list[dict]:
        rows[9]["call_id"] = rows[2]["call_id"]
        return rows

    one = _rewrite(centre, tmp_path / "a" / "manifest.csv", dup)
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(one), "--base", str(base))
    assert "duplicate call_id" in err
    # The same calls in two exports of the centre.
    first = _rewrite(centre, tmp_path / "b1" / "manifest.csv", lambda rows: rows[:70])
    second = _rewrite(centre, tmp_path / "b2" / "manifest.csv", lambda rows: rows[60:])
    err = _refused(
        monkeypatch, capsys, base, tmp_path / "o", str(first), str(second), "--base", str(base)
    )
    assert "duplicate call ids across the centre's manifests: 10 id(s)" in err
    assert "b1/manifest.csv line 62" in err


def test_calls_the_base_learnt_from_are_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    sim: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(sim), "--base", str(base))
    assert "100 of the centre's 100 calls were used to train the base model" in err

    # A copy of a few of its training calls, renamed, inside the centre's export.
    with open(sim, newline="") as fh:
        learnt = list(csv.DictReader(fh))[:3]

    def mix(rows: list[dict]) -> list[dict]:
        for k, r in enumerate(learnt):
            r = dict(r, call_id=f"x{k}", audio_path=str((sim.parent / r["audio_path"]).resolve()))
            rows.append(r)
        return rows

    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", mix)
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(manifest), "--base", str(base))
    assert "3 of the centre's 115 calls were used to train" in err
    assert "line 114 (call_id x0)" in err


def test_other_time_zone_is_warned_about_naming_rows(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    # Refused for its size after the warnings, so nothing is trained here.
    def shift(rows: list[dict]) -> list[dict]:
        rows = rows[:50]
        for r in rows[10:12]:
            r["started_at"] = r["started_at"].replace("+07:00", "+08:00")
        return rows

    manifest = _rewrite(centre, tmp_path / "c" / "manifest.csv", shift)
    err = _refused(monkeypatch, capsys, base, tmp_path / "o", str(manifest), "--base", str(base))
    assert "started_at offsets are mixed (+07:00 on 48, +08:00 on 2 calls)" in err
    assert "line 12" in err and "line 13" in err and "--timezone" in err
    err = _refused(
        monkeypatch,
        capsys,
        base,
        tmp_path / "o",
        str(manifest),
        "--base",
        str(base),
        "--timezone",
        "Asia/Makassar",
    )
    assert "48 of 50 calls have a UTC offset (+07:00) other than --timezone Asia/Makassar" in err


def test_base_of_another_feature_version_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    tmp_path: Path,
) -> None:
    old = tmp_path / "old"
    shutil.copytree(base, old)
    card = json.loads((old / "card.json").read_text())
    card["features"] = card["features"][:-2]
    (old / "card.json").write_text(json.dumps(card))
    err = _refused(monkeypatch, capsys, old, tmp_path / "o", str(centre), "--base", str(old))
    assert "model feature list differs from this callsift version" in err
    err = _refused(
        monkeypatch, capsys, base, tmp_path / "o", str(centre), "--base", str(tmp_path / "no")
    )
    assert "does not exist" in err


# --------------------------------------------------------------------------- the model


def _table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    from classifier.features import FEATURE_NAMES

    rng = np.random.default_rng(seed)
    y = np.asarray(LABELS, dtype=object)[rng.integers(0, 4, n)]
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    for k, c in enumerate(LABELS):
        X.iloc[:, k] += 2.0 * (y == c)
    X["call_complete"] = 1.0
    # A coarse grid: with class weights, scikit-learn bins a feature of more than 255
    # distinct values through a slow weighted-percentile path.
    return X.round(1), y


def test_recalibrate_keeps_the_booster_and_the_original() -> None:
    X, y = _table(400, 0)
    model = CallClassifier(max_iter=10).fit(X, y)
    before = (model.thresholds_, model.predict_proba(X))
    Xc, yc = _table(200, 1)
    Xc.iloc[:, 0] += 0.7  # the centre's calls sit elsewhere (on the same grid)
    new = model.recalibrate(Xc, yc, possible_target=0.01, likely_target=0.002)
    assert new.estimator_ is model.estimator_
    M = Xc.loc[:, list(model.features_)].to_numpy()
    np.testing.assert_array_equal(
        new.predict_proba_matrix(M, calibrated=False),
        model.predict_proba_matrix(M, calibrated=False),
    )
    assert model.thresholds_ == before[0]
    np.testing.assert_array_equal(model.predict_proba(X), before[1])
    assert "recalibration_" not in model.__dict__
    # About 50 emergency calls cannot show 1%: none of them may be flagged.
    info = new.recalibration_["calls"]
    assert info["possible"]["allowed"] == 0 and info["possible"]["flagged"] == 0
    emergency = yc == "emergency"
    assert (new.flag(Xc)[emergency] == "none").all()
    assert info["possible"]["upper_bound"] == pytest.approx(
        1 - 0.05 ** (1 / info["emergency_calls"])
    )


def test_sigmoid_recalibration_keeps_the_order_isotonic_steps_tie() -> None:
    # A centre's few hundred calls: isotonic steps map calls the booster ranks apart
    # to one value (ties, a lower ROC-AUC); a sigmoid per class keeps them apart.
    from sklearn.metrics import roc_auc_score

    X, y = _table(400, 0)
    model = CallClassifier(max_iter=10).fit(X, y)
    Xc, yc = _table(160, 7)
    Xv, yv = _table(300, 8)
    k = LABELS.index("ghost")
    raw = model.predict_proba_matrix(Xv.loc[:, list(model.features_)].to_numpy(), calibrated=False)
    fits = {}
    for method in ("isotonic", "sigmoid"):
        new = model.recalibrate(Xc, yc, calibration=method)
        assert new.calibration == method and new.recalibration_["calibration"] == method
        fits[method] = new.predict_proba(Xv)[:, k]
    assert model.calibration == "isotonic"  # the original is untouched
    distinct = {m: np.unique(p.round(12)).size for m, p in fits.items()}
    assert distinct["isotonic"] < distinct["sigmoid"] == len(yv), distinct
    truth = yv == "ghost"
    auc = {m: roc_auc_score(truth, p) for m, p in fits.items()}
    assert auc["sigmoid"] > auc["isotonic"], auc
    assert auc["sigmoid"] == pytest.approx(roc_auc_score(truth, raw[:, k]), abs=0.01)
    with pytest.raises(ValueError, match="calibration is 'platt'"):
        model.recalibrate(Xc, yc, calibration="platt")


def test_recalibrate_refuses_rows_without_emergency() -> None:
    X, y = _table(300, 2)
    model = CallClassifier(max_iter=5).fit(X, y)
    keep = y != "emergency"
    with pytest.raises(ValueError, match="no emergency call"):
        model.recalibrate(X[keep], y[keep])


def test_the_bound_allows_flags_only_with_enough_emergency_calls() -> None:
    # 0 of n flagged has the upper bound 1 - 0.05^(1/n): 1% needs n >= 299.
    assert allowed_flags(298, 0.01, 0.95) == -1
    assert allowed_flags(299, 0.01, 0.95) == 0
    assert allowed_flags(1000, 0.01, 0.95) == 4
    assert flag_rate_upper_bound(4, 1000, 0.95) <= 0.01 < flag_rate_upper_bound(5, 1000, 0.95)
    assert flag_rate_upper_bound(0, 0, 0.95) == 1.0


def _with_time(X: pd.DataFrame, n_early: int) -> pd.DataFrame:
    """The first 2 x ``n_early`` rows as calls heard 3 s and 12 s so far, the rest whole."""
    n = len(X)
    X = X.copy()
    X["audio_duration_s"] = np.r_[
        np.full(n_early, 3.0), np.full(n_early, 12.0), np.full(n - 2 * n_early, 60.0)
    ]
    X["call_complete"] = np.r_[np.zeros(2 * n_early), np.ones(n - 2 * n_early)]
    return X


def test_recalibrate_keeps_early_buckets_without_enough_emergency_rows() -> None:
    X, y = _table(480, 3)
    model = CallClassifier(max_iter=10, prefixes=(2.0, 10.0)).fit(_with_time(X, 160), y)
    Xc, yc = _table(240, 4)
    Xc = _with_time(Xc, 80)  # about 20 emergency rows per early bucket: fewer than 30
    new = model.recalibrate(Xc, yc)
    assert new.recalibration_["kept_buckets"] == ["2", "10"]
    assert new.bucket_thresholds_[:2] == model.bucket_thresholds_[:2]
    early = Xc["call_complete"] == 0
    np.testing.assert_array_equal(new.flag(Xc[early]), model.flag(Xc[early]))
    np.testing.assert_array_equal(new.predict_proba(Xc[early]), model.predict_proba(Xc[early]))
    # Whole calls: calibrators and thresholds of the centre's whole calls.
    assert new.bucket_thresholds_[2] == new.thresholds_
    assert new.recalibration_["calls"]["emergency_calls"] == int((yc[~early] == "emergency").sum())


def test_choice_keeps_the_recalibrated_base_unless_clearly_beaten() -> None:
    from training.adapt import Candidate, choose, clearly_more

    def cand(kind: str, caught: np.ndarray, flagged: int = 0) -> Candidate:
        figures = {
            "within_budget": flagged == 0,
            "emergency_flagged": flagged,
            "emergency_flagged_any_time": flagged,
            "caught_share": float(caught.mean()),
        }
        return Candidate(kind, kind, None, None, pd.DataFrame(), figures, caught)

    some = np.r_[np.ones(20, bool), np.zeros(10, bool)]
    one_more = some.copy()
    one_more[20] = True
    assert choose([cand("recalibrated", some), cand("retrained", one_more)]).kind == "recalibrated"
    every = np.ones(30, bool)
    assert clearly_more(every, some) == (True, pytest.approx(0.5**10))
    assert choose([cand("recalibrated", some), cand("retrained", every)]).kind == "retrained"
    # The emergency budget comes first, whatever is caught.
    chosen = choose([cand("recalibrated", every, flagged=1), cand("retrained", some)])
    assert chosen.kind == "retrained"


def test_a_candidate_outside_the_budget_is_refused_where_the_base_keeps_it() -> None:
    from training.adapt import AdaptingDoesNotHelp, Candidate
    from training.adapt_choice import check_helps

    def figs(name: str, flagged: int) -> dict[str, object]:
        return {
            "name": name,
            "within_budget": flagged == 0,
            "emergency_flagged": flagged,
            "emergency": 5,
        }

    worse = Candidate(
        "retrained (weight 1)",
        "retrained",
        1.0,
        None,
        pd.DataFrame(),
        figs("retrained (weight 1)", 1),
    )
    other = Candidate(
        "recalibrated", "recalibrated", None, None, pd.DataFrame(), figs("recalibrated", 2)
    )
    base0 = figs("base (not adapted)", 0)
    with pytest.raises(AdaptingDoesNotHelp) as info:
        check_helps(worse, base0, [other.figures, worse.figures, base0])
    message = str(info.value)
    assert message.startswith("adapting does not help yet: on the validation quarter")
    assert (
        "of its 5 emergency calls" in message
        and "(the fewest: retrained (weight 1), 1 of 5)" in message
        and "(0 of 5)" in message
    )
    assert "nothing is written and the base stays" in message
    assert [c["name"] for c in info.value.candidates] == [
        "recalibrated",
        "retrained (weight 1)",
        "base (not adapted)",
    ]
    # The base outside the budget too: the one flagging fewest is written, as before.
    base1 = figs("base (not adapted)", 1)
    check_helps(worse, base1, [other.figures, worse.figures, base1])
    # A candidate within the budget: nothing to refuse.
    ok = Candidate(
        "recalibrated", "recalibrated", None, None, pd.DataFrame(), figs("recalibrated", 0)
    )
    check_helps(ok, base0, [ok.figures, base0])


def test_adapt_refuses_end_to_end_when_only_the_base_keeps_the_budget(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base: Path,
    centre: Path,
    cache: Path,
    tmp_path: Path,
) -> None:
    """A centre whose latest emergency calls sound harder than its earlier ones: the
    recalibrated base sets its thresholds above the easy ones and flags the hard ones,
    which the base left alone. The command refuses; nothing is written."""
    from training.train import load_training_table

    def own_numbers(rows: list[dict]) -> list[dict]:
        # A number of its own for each emergency call: its features then do not depend
        # on when its caller's other calls fall, so the base's scores below still hold
        # after the move.
        for k, r in enumerate(rows):
            if r["label"] == "emergency":
                r["caller_id"] = f"+6281199{k:06d}"
        return rows

    first = _rewrite(centre, tmp_path / "c1" / "manifest.csv", own_numbers)
    model = load_model(base).call
    table, _ = load_training_table(
        [first], n_jobs=1, cache_dir=cache, timezone=None, progress=False
    )
    table = table[table["label"] == "emergency"].reset_index(drop=True)
    proba = pd.DataFrame(model.predict_proba(table), columns=model.classes_)
    possible = model.thresholds_["possible"]
    hard = np.maximum(proba["prank"] / possible["prank"], proba["ghost"] / possible["ghost"])
    left_alone = model.flag(table) == "none"
    order = np.argsort(hard.to_numpy()[left_alone], kind="stable")
    ids = table["call_id"].to_numpy()[left_alone][order]
    late = set(ids[len(ids) // 2 :].tolist())
    dropped = set(table["call_id"][~left_alone].tolist())
    assert len(late) >= 8, (len(ids), dropped)

    def harder_later(rows: list[dict]) -> list[dict]:
        # A week later, same weekday and hour: the calls' own features are unchanged.
        for r in rows:
            if r["call_id"] in late:
                at = pd.Timestamp(r["started_at"]) + pd.Timedelta(days=7)
                r["started_at"] = at.isoformat()
        return [r for r in rows if r["call_id"] not in dropped]

    manifest = _rewrite(first, tmp_path / "c2" / "manifest.csv", harder_later)
    out = tmp_path / "o"
    before = _digest(base)
    code, _, err = _cli(
        monkeypatch,
        capsys,
        "adapt",
        str(manifest),
        "--out",
        str(out),
        "--base",
        str(base),
        "--cache",
        str(cache),
        "--work",
        str(tmp_path / "work"),
        "--weights",
        "none",
        # No cap on non-emergency flags: it would raise the thresholds above the hard calls.
        "--non-emergency-target",
        "1",
        "--no-mlflow",
        "--jobs",
        "1",
    )
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    message = errors[0]
    assert message.startswith("error: adapting does not help yet: on the validation quarter")
    # The quarter holds the calls moved a week later and the centre's own latest ones.
    held = re.search(r"of its (\d+) emergency calls", message)
    assert held is not None and int(held.group(1)) >= len(late), message
    assert f"and the base does not (0 of {held.group(1)})" in message, message
    assert "nothing is written and the base stays" in message
    assert not out.exists()
    assert _digest(base) == before


def test_recalibrate_an_early_bucket_with_enough_emergency_calls_to_show_the_budget() -> None:
    X, y = _table(480, 3)
    model = CallClassifier(max_iter=10, prefixes=(2.0, 10.0)).fit(_with_time(X, 160), y)
    Xc, yc = _table(800, 6)
    yc[:300] = "emergency"  # 300 emergency calls heard 3 s so far: 1% can be shown
    Xc = _with_time(Xc, 350)
    new = model.recalibrate(Xc, yc)
    assert new.recalibration_["kept_buckets"] == ["10"]
    info = new.recalibration_["by_prefix"]["2"]
    assert info["emergency_calls"] >= 300 and info["possible"]["shown"] is True


def test_retrained_candidates_read_what_the_base_reads(base: Path) -> None:
    from training.adapt import retrain_params

    call = load_model(base).call
    params = retrain_params(call, cuts=(2.0, 10.0), seed=7, max_iter=5)
    assert params["features"] == list(NO_CEPSTRA) == list(call.features_)
    assert params["prefixes"] == [2.0, 10.0] and params["random_state"] == 7
    assert params["max_iter"] == 5 and params["n_folds"] == call.n_folds
    assert CallClassifier(**params).get_params()["features"] == list(NO_CEPSTRA)
