"""Scoring for the service: the current model, pre-answer and audio scores.

Nothing here knows about HTTP. The routers turn the errors raised here into status
codes through the service's global error handler.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import numpy as np

from api.store import Store, StoreUnavailableError
from classifier.audio import CallAudio
from classifier.drift import monitored_values
from classifier.errors import CallsiftError
from classifier.features import call_features
from classifier.history import empty_history, history_features
from classifier.scoring import CallScore, ScoringModel

logger = logging.getLogger("callsift.api.service")

#: File extension of a stored recording per libsndfile container.
AUDIO_EXTENSIONS = {
    "WAV": "wav",
    "WAVEX": "wav",
    "FLAC": "flac",
    "OGG": "ogg",
    "MP3": "mp3",
    "AU": "au",
    "AIFF": "aiff",
    "RF64": "rf64",
    "W64": "w64",
}


class ModelUnavailableError(CallsiftError):
    """No usable model: the service answers 503 rather than make up a score."""


class ModelReloadError(CallsiftError):
    """A reload that failed; the previous model keeps serving."""


class ScoreCache:
    """Pre-answer scores of one model by their exact feature vector (bounded, thread-safe).

    A score is a pure function of the model and the feature values, so a vector seen
    before gets the very same score and reasons. The key is the vector's bytes: history
    features are part of it, so a new disposition or review, which changes them, can
    never meet a stale entry. Each loaded model has its own cache, so a reload starts
    empty.

    Parameters
    ----------
    size : int, keyword-only
        Most vectors kept (least recently used dropped first); 0 keeps none.
    """

    def __init__(self, *, size: int = 4096) -> None:
        if size < 0:
            raise CallsiftError(f"cache size must be 0 or more; got {size}")
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, CallScore] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def score(self, model: ScoringModel, features: dict[str, float]) -> tuple[CallScore, bool]:
        """The pre-answer score of ``features`` and whether it came from the cache."""
        names = model.classifier("pre_answer").features_
        try:
            key = np.array([features[f] for f in names], dtype=np.float64).tobytes()
        except (KeyError, TypeError, ValueError):
            return model.score(features, stage="pre_answer"), False  # it names the problem
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return hit, True
        score = model.score(features, stage="pre_answer")
        with self._lock:
            self.misses += 1
            if self.size:
                self._items[key] = score
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return score, False


@dataclass(frozen=True)
class LoadedModel:
    """A model together with where it came from.

    Attributes
    ----------
    model : ScoringModel
    source : str
        ``"default"``, ``"dir:<path>"`` or ``"registry:<ref>"``.
    loaded_at : datetime
        UTC time of loading.
    cache : ScoreCache
        This model's pre-answer scores by feature vector.
    """

    model: ScoringModel
    source: str
    loaded_at: datetime
    cache: ScoreCache = field(default_factory=ScoreCache, compare=False, repr=False)

    @property
    def version(self) -> str:
        return self.model.version


def load_scoring_model(
    *,
    model_dir: Path | None = None,
    registry_ref: str | None = None,
    tracking_uri: str | None = None,
) -> LoadedModel:
    """Load a model from the registry, a folder, or the shipped default (in that order).

    Raises
    ------
    CallsiftError
        ModelMismatchError, RegistryError or another callsift error when the model
        cannot be used.
    """
    from classifier.artifact import load_model

    if registry_ref:
        from classifier.registry import download_model

        tmp = Path(tempfile.mkdtemp(prefix="callsift-serve-"))
        try:
            folder = download_model(registry_ref, tracking_uri=tracking_uri, dst=tmp)
            model = load_model(folder)  # fully in memory afterwards
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        source = f"registry:{registry_ref}"
    elif model_dir is not None:
        model = load_model(model_dir)
        source = f"dir:{model_dir}"
    else:
        model = load_model()
        source = "default"
    warm_up(model)
    return LoadedModel(model=model, source=source, loaded_at=datetime.now(UTC))


def warm_up(model: ScoringModel) -> None:
    """Score one synthetic call end to end so the first real call is not the slow one.

    The first call pays for lazy imports, filter banks and the model's flat forest
    (about 1.5 s measured), the first live stream for the compiled loops of the
    features (:func:`classifier.streaming.warm_up`, a few seconds); a reload warms the
    new model before it is swapped in.
    """
    from classifier.streaming import warm_up as warm_features

    warm_features()
    import io

    import numpy as np
    import soundfile as sf

    from classifier.audio import load_audio

    rng = np.random.default_rng(0)
    t = np.arange(3 * 8000) / 8000
    y = 0.01 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 180 * t) * (t % 1 < 0.5)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    at = datetime(2025, 1, 1, 12, tzinfo=UTC)
    audio_score(
        model,
        load_audio(buf.getvalue()),
        caller_id="",
        started_at=at,
        history=empty_history(),
        timezone=None,
    )
    pre_answer_score(model, caller_id="", started_at=at, history=empty_history(), timezone=None)


class ModelHolder:
    """The model currently serving, swapped atomically on reload.

    A request takes :meth:`get` once and keeps that object for its whole life, so a
    reload never changes the model under a request in flight. A failed load (at
    startup or reload) never leaves the holder half-updated.

    Parameters
    ----------
    model_dir, registry_ref, tracking_uri : keyword-only
        The configured source, see :func:`load_scoring_model`.
    """

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        registry_ref: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.registry_ref = registry_ref
        self.tracking_uri = tracking_uri
        self._current: LoadedModel | None = None
        self._error: str | None = "not loaded yet"
        self._reload_lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def error(self) -> str | None:
        """Why no model is serving, or None when one is."""
        return None if self._current is not None else self._error

    def load(self) -> bool:
        """Load the configured model at startup; a failure is kept as :attr:`error`.

        Returns
        -------
        bool
            Whether a model is serving.
        """
        try:
            self._current = load_scoring_model(
                model_dir=self.model_dir,
                registry_ref=self.registry_ref,
                tracking_uri=self.tracking_uri,
            )
            self._error = None
        except Exception as exc:  # the service starts anyway and answers 503
            self._error = _reason(exc)
            logger.error("model unavailable: %s", self._error)
        return self._current is not None

    def get(self) -> LoadedModel:
        """The serving model.

        Raises
        ------
        ModelUnavailableError
            When no model could be loaded.
        """
        current = self._current
        if current is None:
            raise ModelUnavailableError(f"model unavailable: {self._error}")
        return current

    def reload(
        self,
        *,
        registry_ref: str | None = None,
        before_swap: Callable[[LoadedModel | None, LoadedModel], None] | None = None,
    ) -> tuple[LoadedModel | None, LoadedModel]:
        """Load a model fully, then swap it in.

        Parameters
        ----------
        registry_ref : str or None, keyword-only
            A registry alias or version to switch to; None reloads the configured source
            (e.g. a model folder that ``callsift promote`` replaced).
        before_swap : callable or None, keyword-only
            Called with (previous, new) once the new model is loaded and before it
            serves (the audit entry); if it raises, the previous model stays.

        Returns
        -------
        (previous, new)
            ``previous`` is None when no model was serving.

        Raises
        ------
        ModelReloadError
            The new model cannot be loaded; the previous one keeps serving.
        """
        with self._reload_lock:  # two reloads at once would race on which one wins
            previous = self._current
            try:
                new = load_scoring_model(
                    model_dir=None if registry_ref else self.model_dir,
                    registry_ref=registry_ref or self.registry_ref,
                    tracking_uri=self.tracking_uri,
                )
            except Exception as exc:
                reason = _reason(exc)
                if previous is None:
                    self._error = reason
                kept = f"; still serving {previous.version}" if previous else ""
                raise ModelReloadError(f"model reload failed: {reason}{kept}") from exc
            if before_swap is not None:
                before_swap(previous, new)
            if registry_ref:
                self.registry_ref = registry_ref
            # One reference assignment: atomic for every reader.
            self._current = new
            self._error = None
            return previous, new

    def set_for_tests(self, loaded: LoadedModel | None, *, error: str | None = None) -> None:
        """Put a model in place directly (tests and embedding)."""
        self._current = loaded
        self._error = error if loaded is None else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CallsiftError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def pre_answer_score(
    model: ScoringModel,
    *,
    caller_id: str,
    started_at: datetime,
    history: dict[str, float],
    timezone: tzinfo | None,
    cache: ScoreCache | None = None,
) -> CallScore:
    """Score a call the moment it arrives, from metadata and caller history only.

    ``cache`` (keyword-only) must belong to ``model`` (see :attr:`LoadedModel.cache`).
    """
    feats = call_features(
        None,
        caller_id=caller_id,
        started_at=started_at,
        duration_s=0.0,
        history=history,
        timezone=timezone,
    )
    if cache is None:
        return model.score(feats, stage="pre_answer")
    return cache.score(model, feats)[0]


def audio_score(
    model: ScoringModel,
    audio: CallAudio,
    *,
    caller_id: str,
    started_at: datetime,
    history: dict[str, float],
    timezone: tzinfo | None,
) -> CallScore:
    """Score a call from its recording, metadata and caller history."""
    return scored_audio(
        model, audio, caller_id=caller_id, started_at=started_at, history=history, timezone=timezone
    )[0]


def scored_audio(
    model: ScoringModel,
    audio: CallAudio,
    *,
    caller_id: str,
    started_at: datetime,
    history: dict[str, float],
    timezone: tzinfo | None,
) -> tuple[CallScore, dict[str, float | None]]:
    """:func:`audio_score` and the watched features it was scored from (stored for drift,
    :func:`classifier.drift.monitored_values`)."""
    feats = call_features(
        audio,
        caller_id=caller_id,
        started_at=started_at,
        duration_s=audio.duration_s,
        history=history,
        timezone=timezone,
    )
    return model.score(feats, stage="call"), monitored_values(feats)


def score_payload(score: CallScore, *, model_version: str) -> dict[str, Any]:
    """The stored and returned form of a score (JSON-safe)."""
    return {**score.as_dict(), "model_version": model_version}


def no_history() -> dict[str, float]:
    """History features when the history cannot be read (or the number is withheld)."""
    return empty_history()


@dataclass(frozen=True)
class RecentCall:
    """What scoring needs of a registered call, kept in memory for database outages."""

    caller_id: str
    started_at: datetime


class RecentCalls:
    """A bounded, thread-safe cache of recently registered calls.

    When the database goes down between a call's arrival and its recording, the
    recording can still be scored on this replica from the call's metadata.
    """

    def __init__(self, *, size: int = 10_000) -> None:
        self._size = size
        self._items: OrderedDict[str, RecentCall] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, call_id: str, call: RecentCall) -> None:
        with self._lock:
            self._items[call_id] = call
            self._items.move_to_end(call_id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, call_id: str) -> RecentCall | None:
        with self._lock:
            return self._items.get(call_id)


@dataclass(frozen=True)
class Principal:
    """The holder of a verified API key.

    Attributes
    ----------
    key_id : int
    role : str
    name : str
    """

    key_id: int
    role: str
    name: str

    @property
    def actor(self) -> str:
        """How the audit log names this key."""
        return f"key:{self.key_id} {self.name}"


def history_at(store: Store, caller_id: str, started_at: datetime) -> dict[str, float]:
    """History features of a number at a call's start (raises StoreUnavailableError)."""
    if caller_id == "":
        return no_history()  # withheld callers never share a history
    return history_features(store.caller_history(caller_id, before=started_at), at=started_at)


#: What a client is told when the database is down and its call is unknown here.
UNKNOWN_WHILE_DOWN = (
    "database unavailable and call {call_id} is unknown to this server; retry later"
)


def registered_call(
    store: Store, recent: RecentCalls, call_id: str
) -> tuple[RecentCall, dict[str, float], bool]:
    """A registered call, its number's history at its start, and whether that history
    could not be read (the database is down: the call is then taken from ``recent``).

    Raises
    ------
    NotFoundError
        No call ``call_id``.
    StoreUnavailableError
        The database is down and this server never saw the call arrive.
    """
    try:
        record = store.get_call(call_id)
    except StoreUnavailableError:
        known = recent.get(call_id)
        if known is None:
            raise
        return known, no_history(), True
    call = RecentCall(record.caller_id, record.started_at)
    try:
        return call, history_at(store, call.caller_id, call.started_at), False
    except StoreUnavailableError:
        return call, no_history(), True


class KeyCache:
    """Recently verified API keys, by the SHA-256 of the token (never the token).

    It spares the database a lookup per request and lets scoring go on through a
    database outage for keys seen recently.
    """

    def __init__(self, *, fresh_s: float, grace_s: float, size: int = 4096) -> None:
        self.fresh_s = fresh_s
        self.grace_s = grace_s
        self._size = size
        self._items: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def get(self, digest: str, *, max_age_s: float) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
        if item is None or time.monotonic() - item[1] > max_age_s:
            return None
        return item[0]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            self._items[digest] = (principal, time.monotonic())
            self._items.move_to_end(digest)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._items.pop(digest, None)

    def forget_key(self, key_id: int) -> None:
        """Drop a key everywhere in this process (after its revocation)."""
        with self._lock:
            for d in [d for d, (p, _) in self._items.items() if p.key_id == key_id]:
                del self._items[d]
