"""Service settings, read from the environment (prefix ``CALLSIFT_``) and ``.env``.

Every limit the service enforces on input lives here, so an operator can tune them
without code changes. ``DATABASE_URL`` is also read without the prefix, as most
platforms set it that way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from classifier.history import resolve_timezone

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Configuration of the scoring service.

    Attributes
    ----------
    database_url : str
        SQLAlchemy URL; SQLite (embedded, the default) or
        ``postgresql+psycopg://user@host:5432/db`` for several replicas.
    data_dir : Path
        Where uploaded recordings are kept (``<data_dir>/recordings``).
    model_dir : Path or None
        A model folder; None serves the model shipped with callsift.
    model_registry_ref : str or None
        An MLflow registry alias or version (e.g. ``"champion"``); takes precedence over
        ``model_dir`` when set.
    mlflow_tracking_uri : str or None
        Tracking server of the registry.
    timezone : str or None
        The centre's time zone (IANA name or ``+08:00``) for hour and weekday features;
        None keeps each call's own UTC offset.
    max_audio_bytes : int
        Largest accepted upload, in bytes.
    max_audio_seconds, min_audio_seconds : float
        Accepted recording length.
    max_audio_samples : int
        Most samples (frames x channels, at the file's own rate) a recording may decode
        to: checked from its header before decoding, and while decoding (a FLAC of
        silence compresses 10,000 to 1). The default is 30 min of 48 kHz stereo.
    upload_timeout_s : float
        A recording's body must arrive within this many seconds of its headers (408
        otherwise): a client that trickles it does not keep a connection forever.
    http_head_timeout_s : float
        A request's line and headers must arrive within this many seconds of the
        connection opening or of the previous response (``callsift serve`` only).
    http_keep_alive_s : float
        An idle keep-alive connection is closed after this many seconds.
    max_future_skew_s : float
        How far in the future ``started_at`` may lie (switch clock drift).
    max_json_bytes : int
        Largest accepted JSON request body.
    auto_migrate : bool
        Run the database migrations at startup.
    db_timeout_s : float
        How long a request waits for a database connection before the database is
        treated as unavailable.
    key_cache_s : float
        How long a verified API key is trusted without asking the database again
        (a revoked key stops working at most this long after revocation).
    key_offline_grace_s : float
        While the database is unreachable, keys verified within this many seconds keep
        working, so scoring goes on during an outage.
    auth_failures_per_minute : int
        Failed API key checks (unknown, revoked, expired or malformed keys) one client
        address may make in 60 s; past it a key this process has not verified before
        gets 429 with ``Retry-After`` until the oldest failure is a minute old. Counted
        per worker process; 0 turns the limit off.
    retention_days : int or None
        ``callsift db retention``: recordings of calls that started more than this many
        days ago are deleted; None keeps them.
    number_retention_days : int or None
        ``callsift db retention``: caller numbers of calls (and reviews) older than this
        many days are replaced by a keyed pseudonym; None keeps them.
    pseudonym_key : SecretStr or None
        Key of those pseudonyms (HMAC-SHA256): the same number gets the same pseudonym
        in every run, so training still keeps a caller on one side of its split.
        Required when ``number_retention_days`` is set.
    log_salt : SecretStr or None
        Salt of the phone-number hashes in logs; None draws a random salt per process
        (hashes then only correlate within one process).
    log_level : str
    instance : str or None
        Name of this server among those sharing the database, in its stream leases:
        the worker processes of one server share it, and with it ``stream_max``. None:
        ``callsift serve`` names itself ``HOSTNAME:PORT``; an app started otherwise
        (``uvicorn --factory api.main:create_app``) takes the host name.
    stream_max : int
        Live audio streams one server (all its worker processes together) serves at
        once; one more is refused (close code 1013).
    stream_max_seconds : float
        Audio a live stream scores; later frames are accepted but not scored (each
        second kept holds about 92 kB, so memory stays below ``stream_max`` times this).
    stream_idle_s : float
        A stream without a frame for this long gets its final score and is closed.
    stream_update_s : float
        Seconds of audio between two score updates of a live stream (at most 1).
    stream_max_ahead_s : float
        How far ahead of real time a client's audio is scored; a faster sender's frames
        are read as they come (held, at most ``stream_max_seconds`` of audio) and scored
        at real-time pace.
    stream_ping_interval_s, stream_ping_timeout_s : float
        ``callsift serve``: the WebSocket keepalive. Every ``stream_ping_interval_s`` the
        server pings each live stream's client and closes the stream (1011 "keepalive
        ping timeout") when no answer comes within ``stream_ping_timeout_s``.
    stream_processes : int
        Scoring processes of each worker process: they own the state of the live streams
        pinned to them and compute their updates, off the worker's event loop
        (``api/scoring_pool.py``). One per worker serves about 100 streams on this
        machine's cores.
    stream_lease_s : float
        A stream lease whose heartbeat is older than this belongs to a dead process and
        counts as free; each worker refreshes its leases every sixth of it.
    loop_stall_ms : float
        An event loop pause this long is logged with the stack that held the loop (the
        loop moves every live stream's frames and updates: a pause delays all of the
        worker's streams); 0 turns the watch off.
    worker_start_timeout_s : float
        ``callsift serve --workers N``: how long a worker may take to load the model and
        warm up before the server gives up and stops with the reason (a busy machine
        slows a start; a worker that never starts is not restarted forever).
    drift_window_days : int
        Drift (``GET /v1/model``, ``/metrics``): the calls that started in the last this
        many days and were scored from audio by the serving model are compared with its
        training reference.
    drift_min_calls : int
        Fewer calls in that window are not judged (``insufficient_data``): PSI over ten
        bins is mostly noise below about 200 calls (docs/model.md, "Drift").
    drift_cache_s : float
        How long a drift computation is reused by ``GET /v1/model`` and ``/metrics``
        (per worker process); 0 computes it at every request.
    events_poll_s : float
        How often each worker reads new events for its ``GET /v1/events`` clients.
    events_queue_max : int
        Events one client may have waiting; a client that falls further behind (does
        not read) is dropped.
    events_heartbeat_s : float
        An idle event stream gets a comment line this often (proxies keep it open).
    events_replay_s : float
        How old a missed event may be and still be replayed on reconnection (else the
        client gets a ``reset``).
    events_token_s : float
        Lifetime of a one-use event stream token (``POST /v1/events/token``).
    events_key_check_s : float
        How often the keys of open event streams are checked (a revoked key ends its
        stream within this).
    events_retry_ms : int
        The reconnection delay event streams ask browsers for.
    """

    model_config = SettingsConfigDict(
        env_prefix="CALLSIFT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = Field(
        default="sqlite:///runs/callsift.db",
        validation_alias=AliasChoices("CALLSIFT_DATABASE_URL", "DATABASE_URL"),
    )
    data_dir: Path = Path("runs/data")
    model_dir: Path | None = None
    model_registry_ref: str | None = None
    mlflow_tracking_uri: str | None = None
    timezone: str | None = None
    max_audio_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_audio_seconds: float = Field(default=1800.0, gt=0)
    min_audio_seconds: float = Field(default=0.25, ge=0)
    # classifier.audio.MAX_DECODED_SAMPLES (not imported: settings stay light).
    max_audio_samples: int = Field(default=1800 * 48_000 * 2, gt=0)
    upload_timeout_s: float = Field(default=120.0, gt=0)
    http_head_timeout_s: float = Field(default=10.0, gt=0)
    http_keep_alive_s: float = Field(default=5.0, gt=0)
    max_future_skew_s: float = Field(default=300.0, ge=0)
    max_json_bytes: int = Field(default=256 * 1024, gt=0)
    auto_migrate: bool = True
    db_timeout_s: float = Field(default=2.0, gt=0)
    key_cache_s: float = Field(default=10.0, ge=0)
    key_offline_grace_s: float = Field(default=3600.0, ge=0)
    auth_failures_per_minute: int = Field(default=30, ge=0)
    retention_days: int | None = Field(default=None, ge=1)
    number_retention_days: int | None = Field(default=None, ge=1)
    pseudonym_key: SecretStr | None = None
    log_salt: SecretStr | None = None
    log_level: LogLevel = "INFO"
    # At most api.db.INSTANCE_MAX characters (not imported: settings stay light).
    instance: str | None = Field(default=None, min_length=1, max_length=200)
    stream_max: int = Field(default=256, gt=0)
    stream_max_seconds: float = Field(default=300.0, ge=1.0)
    stream_idle_s: float = Field(default=10.0, gt=0)
    stream_update_s: float = Field(default=1.0, gt=0, le=1.0)
    stream_max_ahead_s: float = Field(default=2.0, ge=0)
    stream_ping_interval_s: float = Field(default=20.0, gt=0)
    stream_ping_timeout_s: float = Field(default=20.0, gt=0)
    stream_processes: int = Field(default=1, ge=1, le=16)
    stream_lease_s: float = Field(default=30.0, gt=0)
    loop_stall_ms: float = Field(default=100.0, ge=0)
    worker_start_timeout_s: float = Field(default=180.0, gt=0)
    drift_window_days: int = Field(default=7, ge=1, le=366)
    drift_min_calls: int = Field(default=200, ge=1)
    drift_cache_s: float = Field(default=60.0, ge=0)
    events_poll_s: float = Field(default=0.2, gt=0, le=5.0)
    events_queue_max: int = Field(default=256, ge=1, le=100_000)
    events_heartbeat_s: float = Field(default=15.0, gt=0)
    events_replay_s: float = Field(default=600.0, ge=0)
    events_token_s: float = Field(default=60.0, gt=0, le=3600)
    events_key_check_s: float = Field(default=2.0, gt=0)
    events_retry_ms: int = Field(default=2000, ge=100)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        resolve_timezone(value)  # fail at startup, not on the first call
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _audio_range(self) -> Settings:
        if self.min_audio_seconds > self.max_audio_seconds:
            raise ValueError(
                f"min_audio_seconds ({self.min_audio_seconds}) must be <= max_audio_seconds "
                f"({self.max_audio_seconds})"
            )
        return self
