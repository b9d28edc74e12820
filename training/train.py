"""Train stage: fit, evaluate honestly, save with a model card and log to MLflow.

``callsift train MANIFEST... --out models/NAME`` extracts features of every manifest
(history replayed within each manifest), splits the labelled calls into callers-disjoint,
time-ordered train and test sets (:mod:`training.split`), fits the call model (on the
whole calls and their first 2, 5, 10 and 20 s, ``--prefixes``), the pre-answer model and
the baselines on the train calls, evaluates all of them on the test calls (and the call
model on the test calls' first seconds), and writes the model folder in one atomic
step: ``model.joblib``, ``card.json``, ``baselines.joblib`` and ``report/``. Unless
``--no-mlflow``, the run is logged and the model registered with the alias
``challenger``. :func:`train_table` does the same from an extracted feature table.

Small or odd data gives a model or one clear error (docs/model.md, "Small or odd
training data"): a class short on the train side of the split, a caller holding most
calls, calls that leave one side of the split empty are refused with their counts.

``--cluster ADDRESS`` has the features extracted by a Dask cluster's workers
(:mod:`training.cluster`), one connection for every manifest; the table is the same.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import joblib
import numpy as np
import pandas as pd
import typer

import classifier
from classifier.artifact import CARD_FILE, save_model
from classifier.drift import make_reference
from classifier.errors import InvalidManifestError, InvalidParameterError
from classifier.features import FEATURE_NAMES
from classifier.formats import LABELS
from classifier.manifest import load_manifest
from classifier.model import MAX_GROUP_SHARE, CallClassifier, check_prefixes
from classifier.scoring import PRE_ANSWER_FEATURES, ScoringModel
from training.baselines import Baselines
from training.evaluate import BASELINES_FILE, add_baselines, score_table, write_evaluation
from training.features import (
    DEFAULT_PREFIXES,
    DEFAULT_PREFIXES_TEXT,
    PREFIXES_OPTION,
    extract_features,
    parse_prefixes,
    whole_calls,
)
from training.parallel import CLUSTER_OPTION
from training.split import VOICE_COLUMN, Split, check_fold_by, fold_keys, honest_split

_MIN_TRAIN_SHARE_OK = 0.5  # more failed audio than this and the training set is not trustworthy
#: Boosting weight of a prefix row against 1 for its whole call (docs/benchmarks.md).
DEFAULT_PREFIX_WEIGHT = 0.25


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    card: dict[str, Any]
    metrics: dict[str, Any]
    failures: pd.DataFrame
    example: pd.DataFrame


def code_version() -> str:
    """The git commit of the code (with ``-dirty`` for local changes), else the package version."""
    root = Path(classifier.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            raise OSError(commit.stderr)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return f"callsift-{classifier.__version__}"


def data_fingerprint(table: pd.DataFrame) -> str:
    """SHA-256 of the training calls: ids, callers, times, labels and feature values."""
    h = hashlib.sha256()
    ids = table.loc[:, ["call_id", "caller_id", "started_at", "label"]].astype(str)
    for row in ids.itertuples(index=False):
        h.update("\x1f".join(row).encode())
        h.update(b"\x1e")
    values = table.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    h.update(np.round(values, 6).tobytes())
    return h.hexdigest()


def load_training_table(
    manifests: Sequence[Path],
    *,
    n_jobs: int,
    cache_dir: Path | None,
    timezone: str | None,
    progress: bool,
    prefixes: Sequence[float] = (),
    cluster: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of every labelled call of the manifests, and the calls whose audio failed.

    With ``prefixes``, each call also has its prefix rows (``prefix_s``), sharing its
    ``call_id``. ``cluster`` (a Dask scheduler's address or client): the features are
    extracted by its workers (:func:`training.features.extract_features`).
    """
    if not manifests:
        raise InvalidParameterError("no manifest given; expected one or more manifest.csv")
    if isinstance(cluster, str) and cluster.strip():
        from training.cluster import using

        with using(cluster) as client:  # one connection and check for every manifest
            return load_training_table(
                manifests,
                n_jobs=n_jobs,
                cache_dir=cache_dir,
                timezone=timezone,
                progress=progress,
                prefixes=prefixes,
                cluster=client,
            )
    tables: list[pd.DataFrame] = []
    failures: list[pd.DataFrame] = []
    for k, path in enumerate(manifests):
        frame = load_manifest(path)
        labelled = int((frame["label"].fillna("") != "").sum())
        if labelled == 0:
            raise InvalidManifestError(
                f"{path}: no call has a label; train needs calls labelled "
                f"{', '.join(LABELS)} (use `callsift evaluate` for unlabelled calls)"
            )
        table, failed = extract_features(
            path,
            n_jobs=n_jobs,
            cache_dir=cache_dir,
            timezone=timezone,
            progress=progress,
            prefixes=prefixes,
            cluster=cluster,
        )
        table = table.assign(source=str(k))
        if VOICE_COLUMN in frame:  # who speaks, for calibration folds by voice
            speaker = frame.set_index(frame["call_id"].astype(str))[VOICE_COLUMN]
            table[VOICE_COLUMN] = table["call_id"].astype(str).map(speaker)
        failed.insert(0, "manifest", str(path))
        tables.append(table)
        failures.append(failed)
        if whole_calls(table).sum() < _MIN_TRAIN_SHARE_OK * len(frame):
            raise InvalidManifestError(
                f"{path}: audio of {len(failed)} of {len(frame)} calls could not be read; "
                f"check it with `callsift validate {path}`"
            )
    table = pd.concat(tables, ignore_index=True)
    # Prefix rows repeat their call's id; only whole calls can clash across manifests.
    if len(manifests) > 1 and table.loc[whole_calls(table), "call_id"].duplicated().any():
        # Exports and simulated corpora restart their ids; the manifest keeps them apart.
        names = [Path(m).resolve().parent.name or str(k) for k, m in enumerate(manifests)]
        if len(set(names)) < len(names):
            names = [f"{k}-{n}" for k, n in enumerate(names)]
        prefix = table["source"].map(lambda k: names[int(k)])
        table["call_id"] = prefix + "/" + table["call_id"].astype(str)
    table = table[table["label"].fillna("") != ""].reset_index(drop=True)
    return table, pd.concat(failures, ignore_index=True)


def prefix_weights(table: pd.DataFrame, *, prefix_weight: float) -> np.ndarray:
    """Row weights for the boosting: 1 for a whole call, ``prefix_weight`` for a prefix row.

    Each call brings its whole row and up to one row per prefix; lighter prefix rows
    keep the whole calls, which the call-taker sees scored at hang-up, in the lead.
    """
    check_prefix_weight(prefix_weight)
    return np.where(whole_calls(table), 1.0, float(prefix_weight))


def check_prefix_weight(prefix_weight: float) -> None:
    """Raise unless ``prefix_weight`` is a share in (0, 1]."""
    if not (isinstance(prefix_weight, int | float) and 0.0 < prefix_weight <= 1.0):
        raise InvalidParameterError(
            f"prefix_weight is {prefix_weight!r}; expected a share in (0, 1]"
        )


def fit_models(
    train: pd.DataFrame,
    *,
    params: dict[str, Any],
    seed: int,
    prefix_weight: float = DEFAULT_PREFIX_WEIGHT,
    fold_by: str = "caller",
    domains: Sequence[str] | None = None,
) -> tuple[CallClassifier, CallClassifier, Baselines]:
    """Fit the call model, the pre-answer model and the baselines on training calls.

    The call model learns from every row, prefix rows included (``params["prefixes"]``
    sets its time buckets); the pre-answer model, which hears nothing, and the
    baselines learn from whole calls only. ``fold_by`` groups the calibration folds
    (:func:`training.split.fold_keys`). ``domains`` names each manifest's domain (by
    its position, the ``source`` column): the flag thresholds then hold the emergency
    budget on each domain alone (:meth:`classifier.model.CallClassifier.fit`).
    """
    y = train["label"].astype(str).to_numpy()
    row_domains = (
        None
        if domains is None
        else train["source"].astype(int).map(dict(enumerate(domains))).astype(str).to_numpy()
    )
    n_folds = int(params.get("n_folds", CallClassifier().n_folds))
    groups = fold_keys(train, by=fold_by, n_folds=n_folds)
    call = CallClassifier(**params, random_state=seed).fit(
        train,
        y,
        groups=groups,
        sample_weight=prefix_weights(train, prefix_weight=prefix_weight),
        domains=row_domains,
    )
    whole = whole_calls(train)
    calls = train.loc[whole].reset_index(drop=True)
    # The pre-answer model has its own features (it hears nothing) and no time buckets.
    pre_params = {k: v for k, v in params.items() if k not in ("prefixes", "features")}
    pre = CallClassifier(features=PRE_ANSWER_FEATURES, **pre_params, random_state=seed).fit(
        calls, y[whole], groups=groups[whole]
    )
    return call, pre, Baselines().fit(calls, y[whole])


def split_rows(table: pd.DataFrame, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of train and test, each call's prefix rows following their call.

    ``split`` was made on the whole-call rows of ``table`` (positions among them).
    """
    whole = np.flatnonzero(whole_calls(table))
    key = table["source"].astype(str) + "\x1f" + table["call_id"].astype(str)
    side = pd.Series(0, index=key.iloc[whole].to_numpy())
    side.iloc[split.train] = 1
    side.iloc[split.test] = 2
    per_row = key.map(side).to_numpy()
    return np.flatnonzero(per_row == 1), np.flatnonzero(per_row == 2)


def _check_manifest_folds(
    rows: pd.DataFrame, manifests: Sequence[str], params: dict[str, Any]
) -> None:
    """Folds by manifest: as many manifests with training calls as folds, none holding
    more than :data:`classifier.model.MAX_GROUP_SHARE` of the training rows (the model
    would say "caller" of a manifest)."""
    n_folds = int(params.get("n_folds", CallClassifier().n_folds))
    sizes = rows["source"].astype(str).value_counts()
    if len(sizes) < n_folds:
        raise InvalidParameterError(
            f"--fold-by manifest: the train side of the split holds calls of {len(sizes)} "
            f"manifest(s); {n_folds} calibration folds need {n_folds}: fold by caller"
        )
    k, n = str(sizes.index[0]), int(sizes.iloc[0])
    if n > MAX_GROUP_SHARE * len(rows):
        name = manifests[int(k)] if k.isdigit() and int(k) < len(manifests) else k
        raise InvalidParameterError(
            f"--fold-by manifest: {name} holds {n} of {len(rows)} training rows "
            f"({n / len(rows):.0%}); each calibration fold scores whole manifests with a "
            f"model trained on the others, and one manifest may hold at most "
            f"{MAX_GROUP_SHARE:.0%} of the rows: fold by caller, or give manifests of "
            "more even sizes"
        )


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"--out {out} is a file; expected a model folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CARD_FILE).is_file():
        raise InvalidParameterError(
            f"--out {out} is a non-empty folder that holds no model; refusing to replace it"
        )


def train(
    manifests: Sequence[Path],
    out: Path,
    *,
    name: str | None = None,
    n_jobs: int = 2,
    cache_dir: Path | None = None,
    timezone: str | None = None,
    test_callers: float = 0.3,
    test_after: float = 0.7,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    progress: bool = True,
    prefixes: Sequence[float] = DEFAULT_PREFIXES,
    prefix_weight: float = DEFAULT_PREFIX_WEIGHT,
    fold_by: str = "caller",
    card_extra: dict[str, Any] | None = None,
    domains: Sequence[str] | None = None,
    cluster: Any = None,
) -> TrainResult:
    """Train, evaluate on the honest test split and save the model folder atomically.

    Parameters
    ----------
    manifests : sequence of Path
        Labelled manifests (unlabelled calls in them still feed history).
    out : Path
        Model folder to write; an existing model there is replaced only at the end.
    name : str or None, keyword-only
        Model name for the card (default: the folder name).
    n_jobs, cache_dir, timezone : keyword-only
        As in :func:`training.features.extract_features`.
    test_callers, test_after, seed : keyword-only
        As in :func:`training.split.honest_split`.
    params : dict or None, keyword-only
        :class:`classifier.model.CallClassifier` parameters.
    progress : bool, keyword-only
        Show progress bars.
    prefixes : sequence of float, keyword-only
        Seconds heard at which every call is also cut for training (early scores) and
        measured in the report; empty for whole calls only.
    prefix_weight : float, keyword-only
        Boosting weight of a prefix row (a whole call weighs 1).
    fold_by : {"caller", "manifest", "voice"}, keyword-only
        What the calibration folds, on which the flag thresholds are chosen, keep
        together (:func:`training.split.fold_keys`): ``manifest`` when the manifests are
        corpora as different as a new centre's calls would be; ``voice`` to keep callers
        and the speakers a manifest's ``caller_speaker`` column names (composed calls).
    card_extra : dict or None, keyword-only
        Further fields of the model card (the default recipe's real sources).
    domains : sequence of str or None, keyword-only
        One per manifest: where its audio comes from (``sim``, ``real``); the flag
        thresholds then keep the emergency budget on each domain alone. None: one.
    cluster : str, distributed.Client or None, keyword-only
        A Dask scheduler's address (or client) for the feature stage
        (:func:`training.features.extract_features`); the model is fitted here.

    Returns
    -------
    TrainResult
    """
    out = Path(out)
    _check_out(out)
    n_folds = int((params or {}).get("n_folds", CallClassifier().n_folds))
    check_fold_by(fold_by, manifests=len(manifests), n_folds=n_folds)  # before the features
    cuts = check_prefixes(prefixes)
    params = {**(params or {}), "prefixes": cuts or None}
    # A bad parameter is told before the features are extracted, and is not taken for a
    # problem of the training calls below.
    CallClassifier(**params).check_params()
    check_prefix_weight(prefix_weight)
    if domains is not None and len(domains) != len(manifests):
        raise InvalidParameterError(
            f"{len(domains)} domains for {len(manifests)} manifests; expected one per manifest"
        )
    table, failures = load_training_table(
        manifests,
        n_jobs=n_jobs,
        cache_dir=cache_dir,
        timezone=timezone,
        progress=progress,
        prefixes=cuts,
        cluster=cluster,
    )
    return train_table(
        table,
        out,
        manifests=[str(m) for m in manifests],
        failures=failures,
        name=name,
        test_callers=test_callers,
        test_after=test_after,
        seed=seed,
        params=params,
        prefix_weight=prefix_weight,
        fold_by=fold_by,
        card_extra=card_extra,
        domains=domains,
    )


def train_table(
    table: pd.DataFrame,
    out: Path,
    *,
    manifests: Sequence[str],
    failures: pd.DataFrame | None = None,
    name: str | None = None,
    test_callers: float = 0.3,
    test_after: float = 0.7,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    prefix_weight: float = DEFAULT_PREFIX_WEIGHT,
    fold_by: str = "caller",
    card_extra: dict[str, Any] | None = None,
    domains: Sequence[str] | None = None,
) -> TrainResult:
    """:func:`train` from the feature table of the labelled calls (and their prefix rows,
    cut at ``params["prefixes"]``), as :func:`load_training_table` gives it.

    ``manifests`` name the sources in the card; ``failures`` are the calls whose audio
    failed. Other parameters as in :func:`train`.
    """
    out = Path(out)
    _check_out(out)
    params = dict(params or {})
    cuts = check_prefixes(params.get("prefixes"))
    failures = pd.DataFrame() if failures is None else failures
    whole = whole_calls(table)
    calls = table.loc[whole].reset_index(drop=True)
    split = honest_split(calls, test_callers=test_callers, test_after=test_after, seed=seed)
    train_at, test_at = split_rows(table, split) if cuts else (split.train, split.test)
    train_rows = table.iloc[train_at].reset_index(drop=True)
    test_rows = table.iloc[test_at].reset_index(drop=True)
    if len(train_rows) == 0:
        raise InvalidParameterError(
            f"the split left no training calls out of {len(calls)} labelled calls: a "
            "training call starts before the time cut (--test-after) and comes from a "
            "caller on the train side (--test-callers); give calls spread over a longer "
            "time or from more callers, or raise --test-after / lower --test-callers"
        )
    if len(test_rows) == 0:
        raise InvalidParameterError(
            f"the split left no test calls out of {len(calls)} labelled calls; give more "
            "calls, or raise --test-callers / lower --test-after"
        )
    labelled = calls["label"].astype(str).value_counts()
    on_train = set(calls.iloc[split.train]["label"].astype(str))
    absent = [f"{c} call (of {int(k)} labelled)" for c, k in labelled.items() if c not in on_train]
    if absent:
        raise InvalidParameterError(
            f"the train side of the split ({split.description['train_calls']} of {len(calls)} "
            f"labelled calls) holds no {', no '.join(absent)}: a model trained without them "
            "would never flag them; label more such calls, or change --seed, --test-callers "
            "or --test-after"
        )
    if fold_by == "manifest":
        _check_manifest_folds(train_rows, manifests, params)
    try:
        call, pre, baselines = fit_models(
            train_rows,
            params=params,
            seed=seed,
            prefix_weight=prefix_weight,
            fold_by=fold_by,
            domains=domains,
        )
    except InvalidParameterError as exc:
        # The model speaks of the calls it was given: say they are the split's train side.
        d = split.description
        raise InvalidParameterError(
            f"the train side of the split ({d['train_calls']} of {len(calls)} labelled "
            f"calls; {d['test_calls']} for testing, {d['left_out_calls']} left out): {exc}"
        ) from exc

    fingerprint = data_fingerprint(train_rows)
    created = datetime.now(UTC).replace(microsecond=0)
    model_name = name or out.name
    card: dict[str, Any] = {
        "name": model_name,
        "version": f"{model_name}-{created:%Y%m%dT%H%M%SZ}-{fingerprint[:8]}",
        "created_at": created.isoformat(),
        "data_fingerprint": fingerprint,
        "code_version": code_version(),
        "callsift_version": classifier.__version__,
        "training_data": {
            "manifests": list(manifests),
            "labelled_calls": len(calls),
            "prefix_rows": int(len(table) - len(calls)),
            "train_class_counts": calls.iloc[split.train]["label"].value_counts().to_dict(),
            "test_class_counts": calls.iloc[split.test]["label"].value_counts().to_dict(),
            "audio_failures": len(failures),
            # No value in any training row (a mono export's caller features): unused.
            "features_without_values": [f for f in FEATURE_NAMES if train_rows[f].isna().all()],
        },
        "split": split.description,
        "params": {**call.get_params(), "features": None},
        "prefix_weight": prefix_weight if cuts else None,
        "folds_by": fold_by,
        "domains": list(domains) if domains is not None else None,
        "threshold_domains": list(call.threshold_domains_),
        "advisory": (
            "Flags are advice for the call-taker: every call is answered and handled; a "
            "silent caller may be a victim who cannot speak."
        ),
        **(card_extra or {}),
    }
    work = Path(tempfile.mkdtemp(prefix=".callsift-train."))
    try:
        model_view = ScoringModel(call=call, pre_answer=pre, card=card)
        scored_rows = score_table(model_view, test_rows)
        test_whole = whole_calls(test_rows)
        test_calls = test_rows.loc[test_whole].reset_index(drop=True)
        scored = add_baselines(
            scored_rows.loc[test_whole].reset_index(drop=True), test_calls, baselines
        )
        metrics = write_evaluation(
            work / "report",
            scored,
            baselines=baselines,
            title=f"callsift model {card['version']}: held-out test calls",
            card=card,
            split=split.description,
            prefix_scored=scored_rows if cuts else None,
            prefixes=cuts,
        )
        if len(failures):
            failures.to_csv(work / "report" / "errors.csv", index=False)
        card["metrics"] = _headline(metrics)
        # What the service compares the calls it scores with (docs/model.md, "Drift").
        card["reference"] = make_reference(
            calls.iloc[split.train],
            scored,
            source=(
                f"features: the {len(split.train)} training calls (whole calls); scores "
                f"and flags: the {len(scored)} held-out test calls"
            ),
        )
        joblib.dump(baselines, work / BASELINES_FILE, compress=3)
        save_model(
            out,
            call=call,
            pre_answer=pre,
            card=card,
            extra_files={"report": work / "report", BASELINES_FILE: work / BASELINES_FILE},
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    example = test_calls.loc[: min(2, len(test_calls)) - 1, list(FEATURE_NAMES)]
    return TrainResult(
        model_dir=out, card=card, metrics=metrics, failures=failures, example=example
    )


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("calls", "labelled_calls", "per_class", "recall_at_fpr", "flags", "calibration")
    out = {k: metrics[k] for k in keep if k in metrics}
    if "flags" in out and isinstance(out["flags"], dict):
        out["flags"] = {k: v for k, v in out["flags"].items() if k != "counts"}
    if "comparison" in metrics:
        out["baselines"] = metrics["comparison"]
    return out


def train_command(
    manifests: Annotated[list[Path], typer.Argument(help="labelled manifest.csv files")],
    out: Annotated[Path, typer.Option("--out", help="model folder, e.g. models/kendari")],
    name: Annotated[str | None, typer.Option("--name", help="model name (default: folder)")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="worker processes")] = 2,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="feature cache folder (joblib.Memory)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="centre time zone, e.g. Asia/Makassar")
    ] = None,
    test_callers: Annotated[
        float, typer.Option("--test-callers", help="share of callers held out for testing")
    ] = 0.3,
    test_after: Annotated[
        float, typer.Option("--test-after", help="time quantile where the test period starts")
    ] = 0.7,
    seed: Annotated[int, typer.Option("--seed", help="seed of split and model")] = 0,
    max_iter: Annotated[int, typer.Option("--max-iter", help="boosting iterations")] = 300,
    possible_target: Annotated[
        float,
        typer.Option("--possible-target", help="max share of emergency calls flagged 'possible'"),
    ] = 0.01,
    likely_target: Annotated[
        float,
        typer.Option("--likely-target", help="max share of emergency calls flagged 'likely'"),
    ] = 0.002,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow tracking URI (default: local ./mlruns)"),
    ] = None,
    registered_name: Annotated[
        str, typer.Option("--registered-name", help="MLflow registered model name")
    ] = "callsift",
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="skip MLflow logging")] = False,
    prefixes: Annotated[str, PREFIXES_OPTION] = DEFAULT_PREFIXES_TEXT,
    prefix_weight: Annotated[
        float, typer.Option("--prefix-weight", help="boosting weight of a prefix row (0, 1]")
    ] = DEFAULT_PREFIX_WEIGHT,
    fold_by: Annotated[
        str,
        typer.Option(
            "--fold-by",
            help="calibration folds keep callers (caller), callers and their voices "
            "(voice: the manifest's caller_speaker column) or whole manifests (manifest) "
            "together; manifest when each manifest is a corpus of its own",
        ),
    ] = "caller",
    domain: Annotated[
        list[str] | None,
        typer.Option(
            "--domain",
            help="where each manifest's audio comes from (e.g. sim, real), once per "
            "manifest in order: the flag thresholds keep the emergency budget on each",
        ),
    ] = None,
    cluster: Annotated[str | None, CLUSTER_OPTION] = None,
) -> None:
    """Train the prank and ghost model on labelled manifests; report and register it."""
    params = {
        "max_iter": max_iter,
        "possible_target": possible_target,
        "likely_target": likely_target,
    }
    result = train(
        manifests,
        out,
        name=name,
        n_jobs=jobs,
        cache_dir=cache,
        timezone=timezone,
        test_callers=test_callers,
        test_after=test_after,
        seed=seed,
        params=params,
        prefixes=parse_prefixes(prefixes),
        prefix_weight=prefix_weight,
        fold_by=fold_by,
        domains=domain or None,
        cluster=cluster,
    )
    card = result.card
    typer.echo(f"model {card['version']} written to {out}")
    per = result.metrics.get("per_class") or {}
    for cls in ("prank", "ghost"):
        auc = (per.get(cls) or {}).get("roc_auc")
        if auc is not None:
            typer.echo(f"held-out {cls} ROC-AUC {auc:.3f}")
    typer.echo(f"report: {out / 'report' / 'report.md'}")
    if len(result.failures):
        typer.echo(f"{len(result.failures)} call(s) with unreadable audio left out", err=True)
    empty = card["training_data"]["features_without_values"]
    if empty:
        typer.echo(
            f"{len(empty)} feature(s) without any value in the training calls, not used: "
            f"{', '.join(empty)}",
            err=True,
        )
    if no_mlflow:
        return
    from training.registry import log_training_run
    from training.report import flat_metrics

    registered = log_training_run(
        out,
        params={k: v for k, v in card["params"].items() if v is not None},
        metrics=flat_metrics(result.metrics),
        data_fingerprint=card["data_fingerprint"],
        code_version=card["code_version"],
        input_example=result.example,
        tracking_uri=tracking_uri,
        model_name=registered_name,
    )
    typer.echo(
        f"MLflow: run {registered.run_id}, registered {registered.name} version "
        f"{registered.version} as challenger"
    )
