"""Every database read and write of the scoring service.

:class:`Store` knows nothing about HTTP: it takes and returns plain Python values and
raises :class:`StoreError` subclasses (or :class:`~classifier.errors.InvalidParameterError`
for a bad argument), which the app turns into status codes. Each method is one short
transaction; a method that refuses its input changes nothing.

The store is one class made of one part per resource, each in its own module:
:mod:`~api.store.engine` (connections, bounds, errors, migrations, the raw SQLite
path), :mod:`~api.store.calls`, :mod:`~api.store.recordings`,
:mod:`~api.store.numbers` (with the risk formula in :mod:`~api.store.risk`),
:mod:`~api.store.export`, :mod:`~api.store.leases`, :mod:`~api.store.keys`,
:mod:`~api.store.audit` and :mod:`~api.store.dashboard`.
"""

from __future__ import annotations

from api.store.audit import AuditStore
from api.store.dashboard import DashboardStore
from api.store.engine import ALEMBIC_INI, API_DIR, MIGRATIONS_DIR
from api.store.errors import (
    ConflictError,
    NotFoundError,
    RecordingStorageError,
    StorageFullError,
    StoreError,
    StoreUnavailableError,
)
from api.store.export import MANIFEST_COLUMNS, ExportStore, manifest_fieldnames, rows_to_csv
from api.store.keys import KeyStore
from api.store.leases import LeaseStore, StreamClaim
from api.store.numbers import FLAGGED_LABELS, REVIEW_ACTIONS, NumberStore
from api.store.recordings import RecordingStore
from api.store.rows import CallRecord, score_event

__all__ = [
    "ALEMBIC_INI",
    "API_DIR",
    "FLAGGED_LABELS",
    "MANIFEST_COLUMNS",
    "MIGRATIONS_DIR",
    "REVIEW_ACTIONS",
    "CallRecord",
    "ConflictError",
    "NotFoundError",
    "RecordingStorageError",
    "StorageFullError",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "StreamClaim",
    "manifest_fieldnames",
    "rows_to_csv",
    "score_event",
]


class Store(
    RecordingStore,
    NumberStore,
    ExportStore,
    LeaseStore,
    KeyStore,
    AuditStore,
    DashboardStore,
):
    """The service's database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (SQLite file or PostgreSQL).
    data_dir : Path, keyword-only
        Folder of stored recordings (``<data_dir>/recordings/<sha256>.<ext>``).
    pool_timeout_s : float, keyword-only
        Longest wait of one database call (``CALLSIFT_DB_TIMEOUT_S``): for a connection,
        a lock or a statement (:func:`api.db.make_engine`); past it the call raises
        :class:`StoreUnavailableError` with reason ``timeout``.
    """
