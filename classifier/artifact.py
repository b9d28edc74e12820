"""Model artefacts on disk: a joblib file and its JSON model card.

A model folder holds ``model.joblib`` (the two classifiers) and ``card.json`` (version,
creation time, data fingerprint, library versions, feature lists, the prefixes (seconds
heard) the call model was trained and thresholded at, thresholds, metrics and the
SHA-256 of the joblib file). A model saved before prefixes existed still loads: it
scores every time heard with its one set of thresholds, under the early-ghost rule.
:func:`load_model` checks the card before it unpickles anything and refuses a model
built for other library versions or another feature list: a mismatched model would not
fail, it would silently score wrong.

:func:`save_model` writes a new folder beside the target and swaps it in only when
complete, so a failed save never leaves a partial model where a good one stood.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy
import sklearn

from classifier.errors import CallsiftError, ModelMismatchError
from classifier.features import FEATURE_NAMES
from classifier.jsonable import jsonable
from classifier.model import CallClassifier
from classifier.scoring import PRE_ANSWER_FEATURES, ScoringModel

MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"
#: 2 since flag thresholds apply to flag scores (p_prank + p_ghost for the likelier
#: class, classifier.model.policy.flag_scores); format 1's thresholds were set on p alone.
FORMAT_VERSION = 2
#: The model shipped with callsift, used when no other is configured.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose pickles or numerics a model depends on."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(
    directory: str | Path,
    *,
    call: CallClassifier,
    pre_answer: CallClassifier,
    card: dict[str, Any],
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write a model folder atomically.

    Parameters
    ----------
    directory : str or Path
        Target folder; an existing model there is replaced only once the new one is
        complete.
    call, pre_answer : CallClassifier, keyword-only
        Fitted classifiers.
    card : dict, keyword-only
        Card fields from training (name, version, data fingerprint, metrics, ...);
        library versions, feature lists, thresholds and the file hash are added here.
    extra_files : dict or None, keyword-only
        Further files or folders to place in the model folder (report, baselines).

    Returns
    -------
    Path
        The model folder.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        joblib.dump(
            {"format": FORMAT_VERSION, "call": call, "pre_answer": pre_answer},
            staging / MODEL_FILE,
            compress=3,
        )
        full = {
            **card,
            "format": FORMAT_VERSION,
            "libraries": library_versions(),
            # The install's feature list (what the features mean), and the ones the call
            # model reads: all of them unless it was trained on a subset.
            "features": list(FEATURE_NAMES),
            "model_features": list(call.features_),
            "pre_answer_features": list(pre_answer.features_),
            "classes": [str(c) for c in call.classes_],
            "prefixes": list(call.prefixes_),
            "min_likely_ghost_s": float(call.min_likely_ghost_s),
            "thresholds": {
                "call": call.thresholds_,
                "pre_answer": pre_answer.thresholds_,
                **(
                    {
                        "call_by_prefix": dict(
                            zip(call.bucket_names(), call.bucket_thresholds_, strict=True)
                        )
                    }
                    if len(call.prefixes_) > 1
                    else {}
                ),
            },
            "validation": {"call": call.validation_, "pre_answer": pre_answer.validation_},
            "model_sha256": _sha256(staging / MODEL_FILE),
        }
        (staging / CARD_FILE).write_text(
            json.dumps(jsonable(full), indent=2, sort_keys=False) + "\n", encoding="utf-8"
        )
        for name, src in (extra_files or {}).items():
            if Path(src).is_dir():
                shutil.copytree(src, staging / name)
            else:
                shutil.copy2(src, staging / name)
        os.chmod(staging, 0o755)
        swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def swap_in(staging: Path, target: Path) -> None:
    """Put a complete folder ``staging`` at ``target``, replacing what stood there.

    The old folder is moved aside under a unique name and removed only once the new one
    is in place; if that fails, the old one is put back.
    """
    if not target.exists():
        staging.rename(target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
    target.rename(old)
    try:
        staging.rename(target)
    except OSError as exc:
        old.rename(target)
        raise CallsiftError(f"cannot put the new model in place at {target}: {exc}") from exc
    shutil.rmtree(old, ignore_errors=True)


def read_card(directory: str | Path) -> dict[str, Any]:
    """The model card of a model folder, without loading the model."""
    d = Path(directory)
    if not d.exists():
        raise ModelMismatchError(f"model path {d} does not exist")
    if not d.is_dir():
        raise ModelMismatchError(f"model path {d} is not a folder; expected a model folder")
    card_path = d / CARD_FILE
    if not card_path.is_file():
        raise ModelMismatchError(f"{d} holds no {CARD_FILE}; it is not a callsift model folder")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelMismatchError(f"{card_path} is not a readable model card: {exc}") from exc
    if not isinstance(card, dict):
        raise ModelMismatchError(f"{card_path} is not a model card (expected a JSON object)")
    return card


def check_card(card: dict[str, Any], *, where: str) -> None:
    """Refuse a card whose format, libraries or features differ from this install."""
    if card.get("format") != FORMAT_VERSION:
        raise ModelMismatchError(
            f"{where}: model format {card.get('format')!r}; this callsift reads format "
            f"{FORMAT_VERSION} (its flag thresholds mean something else): retrain it with "
            "`callsift train` or `callsift build-default`"
        )
    libs = card.get("libraries") or {}
    here = library_versions()
    # scikit-learn does not promise that pickles load across minor versions; numpy and
    # joblib keep their pickle formats within a major version.
    for lib, parts in (("scikit-learn", 2), ("numpy", 1), ("joblib", 1)):
        want = str(libs.get(lib, "missing"))
        if want.split(".")[:parts] != here[lib].split(".")[:parts]:
            raise ModelMismatchError(
                f"{where}: model was saved with {lib} {want}, this install has {here[lib]}; "
                "retrain it with `callsift train` or install the matching version"
            )
    if card.get("features") != list(FEATURE_NAMES):
        theirs = card.get("features") or []
        missing = [f for f in FEATURE_NAMES if f not in theirs]
        extra = [f for f in theirs if f not in FEATURE_NAMES]
        raise ModelMismatchError(
            f"{where}: model feature list differs from this callsift version "
            f"({len(theirs)} vs {len(FEATURE_NAMES)} features; missing {missing[:5]}, "
            f"unknown {extra[:5]}); retrain it with `callsift train`"
        )
    chosen = card.get("model_features", list(FEATURE_NAMES))
    if not isinstance(chosen, list) or not chosen or not set(chosen) <= set(FEATURE_NAMES):
        raise ModelMismatchError(
            f"{where}: the model reads features this callsift version does not compute "
            f"({[f for f in chosen or [] if f not in FEATURE_NAMES][:5]}); retrain it"
        )
    if card.get("pre_answer_features") != list(PRE_ANSWER_FEATURES):
        raise ModelMismatchError(
            f"{where}: pre-answer feature list differs from this callsift version; retrain it"
        )


def load_model(directory: str | Path | None = None) -> ScoringModel:
    """Load a model folder, checking its card first.

    Parameters
    ----------
    directory : str, Path or None
        A folder written by :func:`save_model`; None loads :data:`DEFAULT_MODEL_DIR`.

    Returns
    -------
    ScoringModel

    Raises
    ------
    ModelMismatchError
        Missing folder or files, corrupt file, or a card that does not match this
        install's libraries or feature list.
    """
    d = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    card = read_card(d)
    check_card(card, where=str(d))
    model_path = d / MODEL_FILE
    if not model_path.is_file():
        raise ModelMismatchError(f"{d} holds no {MODEL_FILE}")
    digest = _sha256(model_path)
    if digest != card.get("model_sha256"):
        raise ModelMismatchError(
            f"{model_path} does not match its card (SHA-256 {digest[:12]}..., card says "
            f"{str(card.get('model_sha256'))[:12]}...): the file is corrupt or was replaced"
        )
    try:
        blob = joblib.load(model_path)
    except Exception as exc:  # unpickling can raise anything; the user needs one message
        raise ModelMismatchError(f"{model_path} cannot be loaded: {exc}") from exc
    if not isinstance(blob, dict) or not {"call", "pre_answer"} <= set(blob):
        raise ModelMismatchError(f"{model_path} is not a callsift model file")
    call, pre = blob["call"], blob["pre_answer"]
    if not isinstance(call, CallClassifier) or not isinstance(pre, CallClassifier):
        raise ModelMismatchError(f"{model_path} does not hold callsift classifiers")
    if list(call.features_) != card.get("model_features", list(FEATURE_NAMES)):
        raise ModelMismatchError(f"{model_path} reads other features than its card lists")
    return ScoringModel(call=call, pre_answer=pre, card=card)
