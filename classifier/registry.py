"""Reading callsift models from the MLflow model registry.

The one place that finds and downloads a registered model: the service loads its model
through :func:`download_model` (``CALLSIFT_MODEL_REGISTRY_REF``), and training uses it
and the MLflow session helpers here to promote and adapt models
(:mod:`training.registry` logs and registers them).

The tracking store is, in order: an explicit URI, ``$MLFLOW_TRACKING_URI``, or a local
SQLite file ``./mlruns/mlflow.db`` with artifacts in ``./mlruns/artifacts``. A team
server is just another URI (``http://mlflow.internal:5000``). The registry always lives
in the same store as the runs.

mlflow is imported inside functions only, so the core still imports no MLflow when it
is imported: it takes about a second to import and most commands never need it. Before
its first import, MLflow's usage telemetry is turned off unless
``MLFLOW_DISABLE_TELEMETRY`` says otherwise: a screening tool of an emergency centre
must not send anything anywhere by default (and may run without internet).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from classifier.errors import InvalidParameterError, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

DEFAULT_MODEL_NAME = "callsift"
#: Folder of the local default store, relative to the working directory.
LOCAL_STORE = "mlruns"
#: Name of the pyfunc artifact that holds the callsift model folder.
MODEL_DIR_ARTIFACT = "model_dir"
_TRACKING_ENV = "MLFLOW_TRACKING_URI"
_REGISTRY_ENV = "MLFLOW_REGISTRY_URI"
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_TELEMETRY_ENV = "MLFLOW_DISABLE_TELEMETRY"


def sqlite_path(uri: str) -> Path | None:
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
    db = sqlite_path(chosen)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return chosen


def no_telemetry() -> None:
    # MLflow reads this once, when it is first imported.
    os.environ.setdefault(_TELEMETRY_ENV, "true")


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextmanager
def quiet() -> Iterator[None]:
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
def session(uri: str) -> Iterator[MlflowClient]:
    """Point MLflow at ``uri`` for the block, quietly; restore everything after.

    MLflow's fluent API (runs, log_model) reads a process-wide URI and mirrors it into
    the environment, so both are put back as they were. MLflow's own errors become a
    :class:`RegistryError` naming the store.
    """
    no_telemetry()
    import mlflow
    from mlflow.exceptions import MlflowException

    saved_env = {k: os.environ.get(k) for k in (_TRACKING_ENV, _REGISTRY_ENV)}
    with quiet():
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


def parse_ref(ref: str, model_name: str) -> tuple[str, str | None, str | None]:
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


def model_version(
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
    no_telemetry()
    import mlflow
    from mlflow.models import Model

    name, version, alias = parse_ref(ref, model_name)
    if dst is not None:
        target = Path(dst)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise InvalidParameterError(
                f"download folder {target} is not empty; expected a new or empty folder "
                "(a merge could mix files of two versions)"
            )
        target.mkdir(parents=True, exist_ok=True)
    uri = resolve_tracking_uri(tracking_uri)
    with session(uri) as client:
        mv = model_version(client, name, version, alias)
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
