"""MLflow tracking and model registry for callsift models: the training side.

A training run logs its parameters, metrics, model card and report to MLflow, and the
model folder as an MLflow pyfunc registered under one name (``callsift``). Aliases say
which version does what: ``challenger`` is the newest candidate, ``champion`` the one in
service (moved only by ``callsift promote``).

Which store, the MLflow session and reading a registered model back
(:func:`classifier.registry.download_model`, also what the service loads) live in
:mod:`classifier.registry`. mlflow is imported inside functions only: it takes about a
second to import and most CLI commands never need it.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from classifier.artifact import CARD_FILE, load_model, read_card
from classifier.errors import InvalidParameterError, RegistryError
from classifier.features import FEATURE_NAMES
from classifier.registry import (
    DEFAULT_MODEL_NAME,
    MODEL_DIR_ARTIFACT,
    model_version,
    no_telemetry,
    parse_ref,
    quiet,
    resolve_tracking_uri,
    session,
    sqlite_path,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "callsift"
#: Name of the logged pyfunc model inside a run.
PYFUNC_NAME = "model"
#: Libraries the logged pyfunc needs besides callsift itself (pinned to this install).
_RUNTIME_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "joblib",
    "pandas",
    "threadpoolctl",
    "librosa",
    "soundfile",
    "soxr",
)
_EXAMPLE_ROWS = 5
_PARAM_MAX_CHARS = 6000  # MLflow's limit on a parameter value


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model version.

    Attributes
    ----------
    name : str
        Registered model name.
    version : str
        Version number, as MLflow spells it (``"3"``).
    run_id : str
        The MLflow run that logged it.
    """

    name: str
    version: str
    run_id: str


def _artifact_location(uri: str) -> str | None:
    # Beside a SQLite file; otherwise the server's own artifact root.
    db = sqlite_path(uri)
    return (db.parent.resolve() / "artifacts").as_uri() if db is not None else None


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))
    if exp.lifecycle_stage != "active":
        raise RegistryError(
            f"MLflow experiment {name!r} at {uri} is deleted; restore it "
            f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or choose "
            "another experiment name"
        )
    return str(exp.experiment_id)


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_params(value, prefix=f"{name}."))
        else:
            out[name] = str(value)[:_PARAM_MAX_CHARS]
    return out


def _finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"metric {key!r} is {value!r}; expected a number") from exc
        # MLflow stores NaN but its charts and comparisons choke on it; leave it out.
        if math.isfinite(v):
            out[key] = v
    return out


def _pip_requirements() -> list[str]:
    reqs = []
    for package in _RUNTIME_PACKAGES:
        try:
            reqs.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return reqs


def _example(input_example: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(input_example, pd.DataFrame):
        raise InvalidParameterError(
            f"input_example is a {type(input_example).__name__}; expected a pandas DataFrame"
        )
    missing = [f for f in FEATURE_NAMES if f not in input_example.columns]
    if missing:
        raise InvalidParameterError(
            f"input_example lacks {len(missing)} of the {len(FEATURE_NAMES)} feature columns: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    if len(input_example) == 0:
        raise InvalidParameterError("input_example has no rows; expected at least one call")
    example = input_example.loc[:, list(FEATURE_NAMES)].head(_EXAMPLE_ROWS)
    return example.astype(np.float64).reset_index(drop=True)


def log_training_run(
    model_dir: Path,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    data_fingerprint: str,
    code_version: str,
    input_example: pd.DataFrame,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    model_name: str = DEFAULT_MODEL_NAME,
    alias: str | None = "challenger",
) -> RegisteredModel:
    """Log one training run to MLflow and register its model.

    Parameters
    ----------
    model_dir : Path
        A model folder written by :func:`classifier.artifact.save_model`.
    params : dict, keyword-only
        Training parameters; nested dicts are flattened to ``a.b`` names.
    metrics : dict, keyword-only
        Evaluation figures; NaN and infinite values are left out.
    data_fingerprint, code_version : str, keyword-only
        Logged as run and model-version tags.
    input_example : DataFrame, shape (n_calls, >= n_features), keyword-only
        Feature rows; the first few become the logged input example, and with the model's
        output on them, the signature.
    tracking_uri : str or None, keyword-only
        See :func:`resolve_tracking_uri`.
    experiment : str, keyword-only
        MLflow experiment, created when missing.
    model_name : str, keyword-only
        Registered model name.
    alias : str or None, keyword-only
        Alias pointed at the new version; None sets none.

    Returns
    -------
    RegisteredModel

    Raises
    ------
    ModelMismatchError
        ``model_dir`` is not a model folder this install can load.
    InvalidParameterError
        ``input_example`` lacks feature columns or rows; a metric is not a number.
    RegistryError
        MLflow refused a request.
    """
    no_telemetry()
    import mlflow
    from mlflow.models import infer_signature

    from training.pyfunc import DEFAULT_PARAMS, CallsiftPyfunc, predict_frame

    model_dir = Path(model_dir).resolve()
    card = read_card(model_dir)
    example = _example(input_example)
    flat_params = _flat_params(params)
    finite = _finite_metrics(metrics)  # checked before a run exists, so none is left failed
    output = predict_frame(load_model(model_dir), example)
    with quiet():
        signature = infer_signature(example, output, params=DEFAULT_PARAMS)
    tags = {
        "data_fingerprint": data_fingerprint,
        "code_version": code_version,
        "callsift_model_version": str(card.get("version", "unknown")),
    }
    uri = resolve_tracking_uri(tracking_uri)
    with session(uri) as client:
        exp_id = _experiment_id(client, experiment, uri)
        with mlflow.start_run(experiment_id=exp_id, run_name=tags["callsift_model_version"]) as run:
            mlflow.set_tags(tags)
            if flat_params:
                mlflow.log_params(flat_params)
            if finite:
                mlflow.log_metrics(finite)
            mlflow.log_artifact(str(model_dir / CARD_FILE))
            report = model_dir / "report"
            if report.is_dir():
                mlflow.log_artifacts(str(report), artifact_path="report")
            info = mlflow.pyfunc.log_model(
                name=PYFUNC_NAME,
                python_model=CallsiftPyfunc(),
                artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
                signature=signature,
                input_example=example,
                registered_model_name=model_name,
                # Explicit requirements: inferring them loads the model in a subprocess.
                pip_requirements=_pip_requirements(),
            )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
        if alias:
            client.set_registered_model_alias(model_name, alias, version)
    return RegisteredModel(name=model_name, version=version, run_id=run.info.run_id)


def resolve_version(
    ref: str, *, tracking_uri: str | None = None, model_name: str = DEFAULT_MODEL_NAME
) -> str:
    """The version number a reference points at.

    Parameters
    ----------
    ref : str
        An alias (``champion``), a version number (``"3"``), ``models:/name@alias`` or
        ``models:/name/3``.
    tracking_uri : str or None, keyword-only
    model_name : str, keyword-only
        Registered model name, unless ``ref`` names one.

    Returns
    -------
    str

    Raises
    ------
    RegistryError
        Unknown model, alias or version.
    """
    name, version, alias = parse_ref(ref, model_name)
    with session(resolve_tracking_uri(tracking_uri)) as client:
        return str(model_version(client, name, version, alias).version)


def alias_version(
    alias: str, *, tracking_uri: str | None = None, model_name: str = DEFAULT_MODEL_NAME
) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    with session(resolve_tracking_uri(tracking_uri)) as client:
        from mlflow.exceptions import MlflowException

        try:
            return str(client.get_model_version_by_alias(model_name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise


def set_alias(
    alias: str,
    version: str,
    *,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
) -> None:
    """Point ``alias`` at ``version`` (moving it from any other version).

    Raises
    ------
    RegistryError
        Unknown model or version, or an alias MLflow refuses (``latest``, ``v3``).
    """
    with session(resolve_tracking_uri(tracking_uri)) as client:
        mv = model_version(client, model_name, str(version), None)
        client.set_registered_model_alias(model_name, alias, str(mv.version))


def set_version_tags(
    version: str,
    tags: Mapping[str, str],
    *,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
) -> None:
    """Set tags on one model version.

    Raises
    ------
    RegistryError
        Unknown model or version.
    """
    with session(resolve_tracking_uri(tracking_uri)) as client:
        mv = model_version(client, model_name, str(version), None)
        for key, value in tags.items():
            client.set_model_version_tag(model_name, str(mv.version), key, str(value))
