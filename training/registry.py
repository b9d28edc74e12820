"""MLflow tracking and model registry for callsift models.

A training run logs its parameters, metrics, model card and report to MLflow, and the
model folder as an MLflow pyfunc registered under one name (``callsift``). Aliases say
which version does what: ``challenger`` is the newest candidate, ``champion`` the one in
service (moved only by ``callsift promote``).

The tracking store is, in order: an explicit URI, ``$MLFLOW_TRACKING_URI``, or a local
SQLite file ``./mlruns/mlflow.db`` with artifacts in ``./mlruns/artifacts``. A team
server is just another URI (``http://mlflow.internal:5000``). The registry always lives
in the same store as the runs.

mlflow is imported inside functions only: it takes about a second to import and most
CLI commands never need it. Before its first import, MLflow's usage telemetry is turned
off unless ``MLFLOW_DISABLE_TELEMETRY`` says otherwise: a screening tool of an emergency
centre must not send anything anywhere by default (and may run without internet).
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import numpy as np
import pandas as pd

from classifier.artifact import CARD_FILE, load_model, read_card
from classifier.errors import InvalidParameterError, RegistryError
from classifier.features import FEATURE_NAMES

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

DEFAULT_MODEL_NAME = "callsift"
DEFAULT_EXPERIMENT = "callsift"
#: Folder of the local default store, relative to the working directory.
LOCAL_STORE = "mlruns"
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
_TRACKING_ENV = "MLFLOW_TRACKING_URI"
_REGISTRY_ENV = "MLFLOW_REGISTRY_URI"
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"


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


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    rest = unquote(uri[len(prefix) :]).split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    path = Path(rest)
    return path if path.is_absolute() else Path.cwd() / path


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The MLflow tracking URI to use.

    Parameters
    ----------
    uri : str or None
        An explicit URI (``sqlite:///...``, ``http://...``); wins over everything.

    Returns
    -------
    str
        ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlruns/mlflow.db``.
        The folder of a SQLite file is created, since SQLite will not create it.
    """
    chosen = (uri or "").strip() or os.environ.get(_TRACKING_ENV, "").strip()
    if not chosen:
        chosen = f"sqlite:///{Path.cwd().resolve() / LOCAL_STORE / 'mlflow.db'}"
    db = _sqlite_path(chosen)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return chosen


def _artifact_location(uri: str) -> str | None:
    # Beside a SQLite file; otherwise the server's own artifact root.
    db = _sqlite_path(uri)
    return (db.parent.resolve() / "artifacts").as_uri() if db is not None else None


def _no_telemetry() -> None:
    # MLflow reads this once, when it is first imported.
    os.environ.setdefault(_TELEMETRY_ENV, "true")


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow without its harmless chatter: INFO logs, progress bars, deprecation notices."""
    saved = os.environ.get(_PROGRESS_ENV)
    logger = logging.getLogger("mlflow")
    saved_level = logger.level
    # Logging the model object is the point of the pyfunc; the warning says nothing new.
    pickle_note = _DropMessage("Passing a Python object as `python_model`")
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    with warnings.catch_warnings():
        # Deprecation notices from MLflow's own use of pandas and SQLAlchemy: not ours to fix.
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        try:
            if logger.getEffectiveLevel() < logging.WARNING:
                logger.setLevel(logging.WARNING)
            pyfunc_logger.addFilter(pickle_note)
            os.environ[_PROGRESS_ENV] = "false"
            yield
        finally:
            if saved is None:
                os.environ.pop(_PROGRESS_ENV, None)
            else:
                os.environ[_PROGRESS_ENV] = saved
            pyfunc_logger.removeFilter(pickle_note)
            logger.setLevel(saved_level)


@contextmanager
def _session(uri: str) -> Iterator[MlflowClient]:
    """Point MLflow at ``uri`` for the block, quietly; restore everything after.

    MLflow's fluent API (runs, log_model) reads a process-wide URI and mirrors it into
    the environment, so both are put back as they were. MLflow's own errors become a
    :class:`RegistryError` naming the store.
    """
    _no_telemetry()
    import mlflow
    from mlflow.exceptions import MlflowException

    saved_env = {k: os.environ.get(k) for k in (_TRACKING_ENV, _REGISTRY_ENV)}
    with _quiet():
        try:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            yield mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        except MlflowException as exc:
            raise RegistryError(f"MLflow at {uri}: {exc.message}") from exc
        finally:
            # None is how MLflow itself resets both (its stubs say str only).
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


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
    _no_telemetry()
    import mlflow
    from mlflow.models import infer_signature

    from training.pyfunc import DEFAULT_PARAMS, MODEL_DIR_ARTIFACT, CallsiftPyfunc, predict_frame

    model_dir = Path(model_dir).resolve()
    card = read_card(model_dir)
    example = _example(input_example)
    flat_params = _flat_params(params)
    finite = _finite_metrics(metrics)  # checked before a run exists, so none is left failed
    output = predict_frame(load_model(model_dir), example)
    with _quiet():
        signature = infer_signature(example, output, params=DEFAULT_PARAMS)
    tags = {
        "data_fingerprint": data_fingerprint,
        "code_version": code_version,
        "callsift_model_version": str(card.get("version", "unknown")),
    }
    uri = resolve_tracking_uri(tracking_uri)
    with _session(uri) as client:
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


def _parse_ref(ref: str, model_name: str) -> tuple[str, str | None, str | None]:
    """``(name, version, alias)`` of a model reference; exactly one of the last two is set."""
    text = str(ref).strip()
    if not text:
        raise InvalidParameterError(
            "model reference is empty; expected an alias, a version number or models:/name@alias"
        )
    if text.startswith("models:/"):
        rest = text[len("models:/") :]
        if "@" in rest:
            name, alias = rest.split("@", 1)
            if name and alias:
                return name, None, alias
        elif "/" in rest:
            name, version = rest.rsplit("/", 1)
            if name and version.isdigit():
                return name, version, None
        raise InvalidParameterError(
            f"model reference {ref!r} is not understood; expected models:/name@alias or "
            "models:/name/version"
        )
    if text.isdigit():
        return model_name, str(int(text)), None
    return model_name, None, text


def _known(client: MlflowClient, name: str) -> str:
    """What the registry holds under ``name``, for error messages."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        return f"no model named {name!r} is registered; `callsift train` registers one"
    aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(registered.aliases.items())) or "none"
    try:
        versions = sorted(
            int(mv.version) for mv in client.search_model_versions(f"name = '{name}'")
        )
        shown = ", ".join(map(str, versions)) or "none"
    except MlflowException:
        shown = "unknown"
    return f"model {name!r} has aliases: {aliases}; versions: {shown}"


def _model_version(
    client: MlflowClient, name: str, version: str | None, alias: str | None
) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        wanted = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise RegistryError(
            f"{wanted} of model {name!r} not found: {_known(client, name)}"
        ) from exc


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
    name, version, alias = _parse_ref(ref, model_name)
    with _session(resolve_tracking_uri(tracking_uri)) as client:
        return str(_model_version(client, name, version, alias).version)


def download_model(
    ref: str,
    *,
    tracking_uri: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    dst: Path | None = None,
) -> Path:
    """Download a registered model and return its callsift model folder.

    Parameters
    ----------
    ref : str
        An alias, a version number, ``models:/name@alias`` or ``models:/name/3``.
    tracking_uri : str or None, keyword-only
    model_name : str, keyword-only
        Registered model name, unless ``ref`` names one.
    dst : Path or None, keyword-only
        A new or empty folder to download into; None makes a temporary folder (left for
        the caller to remove).

    Returns
    -------
    Path
        The model folder inside ``dst``, ready for :func:`classifier.artifact.load_model`.

    Raises
    ------
    RegistryError
        Unknown model, alias or version, or a version that is not a callsift model.
    InvalidParameterError
        ``dst`` is not empty.
    """
    _no_telemetry()
    import mlflow
    from mlflow.models import Model

    from training.pyfunc import MODEL_DIR_ARTIFACT

    name, version, alias = _parse_ref(ref, model_name)
    if dst is not None:
        target = Path(dst)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise InvalidParameterError(
                f"download folder {target} is not empty; expected a new or empty folder "
                "(a merge could mix files of two versions)"
            )
        target.mkdir(parents=True, exist_ok=True)
    uri = resolve_tracking_uri(tracking_uri)
    with _session(uri) as client:
        mv = _model_version(client, name, version, alias)
        if dst is None:
            target = Path(tempfile.mkdtemp(prefix=f"callsift-{name}-v{mv.version}-"))
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(target)
            )
        )
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(MODEL_DIR_ARTIFACT)
    if not entry or not (local / entry["path"]).is_dir():
        raise RegistryError(
            f"version {mv.version} of model {name!r} is not a callsift model: it holds no "
            f"{MODEL_DIR_ARTIFACT!r} artifact"
        )
    return local / entry["path"]


def alias_version(
    alias: str, *, tracking_uri: str | None = None, model_name: str = DEFAULT_MODEL_NAME
) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    with _session(resolve_tracking_uri(tracking_uri)) as client:
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
    with _session(resolve_tracking_uri(tracking_uri)) as client:
        mv = _model_version(client, model_name, str(version), None)
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
    with _session(resolve_tracking_uri(tracking_uri)) as client:
        mv = _model_version(client, model_name, str(version), None)
        for key, value in tags.items():
            client.set_model_version_tag(model_name, str(mv.version), key, str(value))
