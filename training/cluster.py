"""Corpus work on a Dask distributed cluster: ``--cluster ADDRESS`` (issue 18).

``callsift simulate``, ``features``, ``train`` (its feature stage) and ``evaluate`` take
``--cluster tcp://HOST:8786`` (or ``DASK_SCHEDULER_ADDRESS``): the calls are cut into
tasks of a few seconds of work each and sent to the Dask scheduler a window at a time;
the client writes every output itself (corpus files, feature table, scores), so the
output is the same bytes as a local run. A task reads its inputs and returns its result;
the only thing it writes is the feature cache, one entry per call keyed by the file's
content, so a task run twice writes the same entries.

Failures: Dask reruns the tasks of a worker that dies on another worker (up to its
``distributed.scheduler.allowed-failures``, 3 by default); a task that outlives that is
cut into one task per call, so one call that kills every worker it meets is reported as
failed (features: in ``.errors.csv``) and the others of its task are done. A call whose
audio cannot be read is an ordinary result, never retried. Calls finished before the
client stopped are in the feature cache (a folder every worker shares): the same
command again does only the rest.

Before any work the client checks that it reached the scheduler (an error naming the
address within :data:`CONNECT_TIMEOUT_S`), that a worker is there, and that every
worker runs the client's callsift (version and a fingerprint of the code the workers
run) and feature libraries; each task checks again, for workers that join later.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import platform
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from distributed import CancelledError, Client, KilledWorker, WorkerPlugin, as_completed

import classifier
from classifier.errors import CallsiftError, InvalidParameterError

T = TypeVar("T")
R = TypeVar("R")

#: Seconds to reach the scheduler before giving up with an error naming it.
CONNECT_TIMEOUT_S = 5.0
#: Seconds to wait for a first worker on a scheduler that has none.
WORKERS_WAIT_S = 10.0
#: A corpus is cut into at least this many tasks per worker thread, so the workers
#: finish together (a task is still at least one call).
TASKS_PER_THREAD = 4
#: Tasks handed to the scheduler ahead of the ones running, per worker thread: enough
#: that no worker waits for the client, few enough that a corpus of millions of calls is
#: never all in the client's and the scheduler's memory at once.
AHEAD_PER_THREAD = 3
#: The code a worker runs for callsift, fingerprinted to refuse a worker whose copy
#: differs from the client's (paths under the project root).
WORKER_CODE = (
    "classifier",
    "training/simulator",
    "training/features.py",
    "training/simulate.py",
    "training/parallel.py",
    "training/cluster.py",
)
#: Libraries whose version changes feature or corpus bits.
_LIBRARIES = ("numpy", "scipy", "librosa", "soundfile", "soxr", "numba", "joblib")
_SCHEMES = ("tcp", "tls", "ws", "wss")


class ClusterError(CallsiftError):
    """The cluster cannot do the work: unreachable, no worker, another callsift, a lost call."""


# --- what a worker runs -------------------------------------------------------------


@cache
def code_fingerprint() -> str:
    """SHA-256 (16 hex digits) of :data:`WORKER_CODE` as this process has it on disk."""
    root = Path(classifier.__file__).resolve().parent.parent
    h = hashlib.sha256()
    for part in WORKER_CODE:
        path = root / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@cache
def identity() -> dict[str, str]:
    """What must be the same on the client and every worker for the same bytes."""
    import soundfile

    out = {
        "callsift": classifier.__version__,
        "code": code_fingerprint(),
        "python": platform.python_version(),
        "libsndfile": str(soundfile.__libsndfile_version__),
    }
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _describe(ident: Mapping[str, str]) -> str:
    return f"callsift {ident.get('callsift', '?')} (code {ident.get('code', '?')})"


def _mismatch(worker: str, theirs: Mapping[str, str], mine: Mapping[str, str]) -> str:
    if (theirs.get("callsift"), theirs.get("code")) != (mine["callsift"], mine["code"]):
        what = f"runs {_describe(theirs)}, this client {_describe(mine)}"
    else:
        diff = [k for k in mine if theirs.get(k) != mine[k]]
        what = "has " + ", ".join(
            f"{k} {theirs.get(k, 'absent')} (this client: {mine[k]})" for k in diff
        )
    return (
        f"worker {worker} {what}; every worker must run the client's callsift and libraries "
        "(install the same release from the same lock and restart the workers)"
    )


class _OneBlasThread(WorkerPlugin):
    """Worker plugin: BLAS on one thread in every worker, set from the worker's main
    thread (OpenBLAS ignores the change from a task's thread; the features' bits depend
    on it, classifier.threads). A worker started by a nanny has it from
    ``OPENBLAS_NUM_THREADS=1`` already; ``dask worker --no-nanny`` does not."""

    name = "callsift-one-blas-thread"

    def setup(self, worker: Any) -> None:
        from classifier.threads import single_threaded_blas

        single_threaded_blas()


def _run_checked(
    fn: Callable[..., list[R]], expected: Mapping[str, str], items: Sequence[Any], *args: Any
) -> list[R]:
    """A task: the same check as before the run (a worker may join later), then the work."""
    mine = identity()
    if mine != dict(expected):
        raise ClusterError(_mismatch(_worker_address(), mine, expected))
    return fn(items, *args)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except ValueError:
        return socket.gethostname()


def _probe(checks: Mapping[str, str | None]) -> list[str]:
    """On a worker: each path that is missing, or whose content is not the token given."""
    bad = []
    for path, token in checks.items():
        try:
            if token is None:
                ok = os.path.exists(path) and os.access(path, os.R_OK)
            else:
                ok = Path(path).read_text() == token
        except OSError:
            ok = False
        if not ok:
            bad.append(path)
    return bad


# --- the client side ------------------------------------------------------------------


def _check_address(address: str) -> tuple[str, int]:
    from distributed.comm import get_address_host_port, parse_address

    hint = "expected a Dask scheduler address like tcp://HOST:8786"
    try:
        scheme, _ = parse_address(address)
        host, port = get_address_host_port(address)
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(f"--cluster {address!r}: {exc}; {hint}") from None
    if scheme not in _SCHEMES or not host or not 0 < int(port) < 65536:
        raise InvalidParameterError(f"--cluster {address!r}: {hint}")
    return str(host), int(port)


async def _identity_of(address: str) -> str:
    """What answers at ``address`` (``Scheduler`` for a scheduler)."""
    from distributed.comm import connect as dask_connect

    comm = await dask_connect(address, timeout=CONNECT_TIMEOUT_S)
    try:
        await comm.write({"op": "identity"})
        reply = await comm.read()
    finally:
        await comm.close()
    return str(reply.get("type", "?")) if isinstance(reply, dict) else "?"


def connect(address: str) -> Client:
    """A client of the scheduler at ``address`` whose workers run this callsift.

    Raises
    ------
    ClusterError
        The scheduler does not answer within :data:`CONNECT_TIMEOUT_S`, has no worker
        within :data:`WORKERS_WAIT_S`, or a worker runs other code or libraries.
    """
    host, port = _check_address(address)
    where = f"the Dask scheduler at {address}"
    # A plain TCP probe first: a refused or unknown address is told at once (Dask's own
    # connect retries a refused port until its timeout).
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ClusterError(
            f"cannot reach {where}: {reason} (is `dask scheduler` running there?)"
        ) from None
    # Then Dask's handshake, bounded: Client() waits for ever on a peer that accepts
    # connections and never answers.
    try:
        # On a thread of its own: the caller may be inside an event loop (a notebook).
        with ThreadPoolExecutor(1) as pool:
            probe = asyncio.wait_for(_identity_of(address), CONNECT_TIMEOUT_S)
            kind = pool.submit(asyncio.run, probe).result()
    except (OSError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {CONNECT_TIMEOUT_S:g} s"
        raise ClusterError(f"cannot reach {where}: {reason}") from None
    except Exception as exc:  # whatever a peer that is not Dask makes the protocol raise
        raise ClusterError(
            f"{address} did not answer as a Dask scheduler ({type(exc).__name__}: {exc})"
        ) from None
    if kind != "Scheduler":
        raise ClusterError(f"{address} is a Dask {kind}, not a scheduler")
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach {where}: {exc}") from None
    try:
        prepare(client)
    except BaseException:
        client.close()
        raise
    return client


def prepare(client: Client) -> None:
    """Wait for a worker, check every worker's callsift (:func:`check_workers`) and set
    one BLAS thread in each, now and in workers that join later."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
    except TimeoutError:
        address = client.scheduler.address if client.scheduler else "?"
        raise ClusterError(
            f"the Dask scheduler at {address} has no worker after {WORKERS_WAIT_S:g} s; "
            f"start some with `dask worker {address} --nthreads 1`"
        ) from None
    check_workers(client)
    client.register_plugin(_OneBlasThread(), name=_OneBlasThread.name)


def check_workers(client: Client) -> None:
    """Refuse a cluster with a worker whose callsift or libraries differ from this client's."""
    mine = identity()
    answers = client.run(identity, on_error="return")
    for worker, theirs in sorted(answers.items()):
        if not isinstance(theirs, dict):
            raise ClusterError(
                f"worker {worker} could not run the version check of {_describe(mine)} "
                f"({type(theirs).__name__}: {theirs}); it runs another callsift, or none"
            )
        if theirs != mine:
            raise ClusterError(_mismatch(worker, theirs, mine))


@contextmanager
def using(cluster: str | Client | None) -> Iterator[Client | None]:
    """A connected client for ``cluster`` (an address: connected here and closed after;
    a client: used as it is; None or empty: None, the work stays on this machine)."""
    if cluster is None or (isinstance(cluster, str) and not cluster.strip()):
        yield None
        return
    if not isinstance(cluster, str):
        prepare(cluster)
        yield cluster
        return
    # The client's own logger reports a lost scheduler with tracebacks; the run says it
    # in one ClusterError instead.
    quiet = logging.getLogger("distributed.client")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        client = connect(cluster.strip())
        try:
            yield client
        finally:
            client.close()
    finally:
        quiet.setLevel(level)


def require_shared(
    client: Client, *, paths: Sequence[str | Path] = (), folder: str | Path | None = None
) -> None:
    """Refuse to start when a worker cannot see ``paths`` or the very ``folder`` this
    client sees (the feature cache: a folder of the same name elsewhere would not resume).
    """
    checks: dict[str, str | None] = {str(Path(p).resolve()): None for p in paths}
    marker: Path | None = None
    if folder is not None:
        root = Path(folder).resolve()
        root.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        marker = root / f".callsift-shared-{token}"
        marker.write_text(token)
        checks[str(marker)] = token
    try:
        answers = client.run(_probe, checks, on_error="return")
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    for worker, bad in sorted(answers.items()):
        if isinstance(bad, BaseException):
            raise ClusterError(f"worker {worker} could not check the shared paths: {bad}")
        for path in bad:
            if marker is not None and path == str(marker):
                raise ClusterError(
                    f"worker {worker} does not see the cache folder {folder} this client "
                    "writes to; give --cache a folder every worker shares (a network file "
                    "system), so a stopped run can resume from it"
                )
            raise ClusterError(
                f"worker {worker} cannot read {path}; the audio and data folders must be on "
                "paths every worker shares, under the same names"
            )


def cut_by_work(
    items: Sequence[T], work: Sequence[float], *, per_task: float, threads: int
) -> list[list[T]]:
    """Consecutive ``items`` cut into tasks of about ``per_task`` work (at least one item
    each), smaller on a small corpus so that each worker thread gets
    :data:`TASKS_PER_THREAD` tasks."""
    total = float(sum(work))
    target = min(per_task, total / max(1, TASKS_PER_THREAD * threads))
    batches: list[list[T]] = []
    current: list[T] = []
    load = 0.0
    for item, w in zip(items, work, strict=True):
        if current and load + w > target:
            batches.append(current)
            current, load = [], 0.0
        current.append(item)
        load += w
    if current:
        batches.append(current)
    return batches


def threads_of(client: Client) -> int:
    """Worker threads on the cluster now."""
    return max(1, sum(client.nthreads().values()))


def map_on_cluster(
    client: Client,
    fn: Callable[..., list[R]],
    batches: Sequence[Sequence[T]],
    *args: Any,
    desc: str,
    progress: bool = True,
    on_lost: Callable[[T, str], R] | None = None,
    after_loss: str = "",
) -> Iterator[list[R]]:
    """Run ``fn(batch, *args)`` on the cluster's workers; yield each result as it arrives.

    A task whose workers died more often than Dask allows (``KilledWorker``) is not lost:
    its items are tried again one by one, one such suspect at a time (Dask also blames
    the tasks waiting on a dying worker, so the suspects are kept from each other); a
    suspect killed again is given up (``on_lost``).

    Parameters
    ----------
    client : distributed.Client
        From :func:`connect`.
    fn : callable
        Takes one batch (and ``args``) and returns one result per item, which must say
        which item it is: results come in the order they finish, not the batches'.
    batches : sequence of sequences
        The work, one task per batch.
    *args
        Passed to ``fn`` after the batch (pickled with every task: keep them small).
    desc : str, keyword-only
        Progress bar label; the bar counts items.
    progress : bool, keyword-only
        Show the progress bar.
    on_lost : callable or None, keyword-only
        ``on_lost(item, reason)``: the result of an item that killed every worker Dask
        tried it on, alone; None raises :class:`ClusterError` instead.
    after_loss : str, keyword-only
        What the error of a lost scheduler adds (where the finished work is).

    Yields
    ------
    list
        ``fn``'s results of one task.
    """
    from tqdm import tqdm

    expected = identity()
    run = uuid.uuid4().hex[:8]
    todo: deque[list[T]] = deque(list(b) for b in batches)
    suspects: deque[T] = deque()
    # key -> (future, items, suspect?)
    running: dict[str, tuple[Any, list[T], bool]] = {}
    done = as_completed(loop=client.loop)
    count = 0

    def send(items: list[T], suspect: bool) -> None:
        nonlocal count
        key = f"callsift-{desc.split()[0]}-{run}-{count}"
        count += 1
        future = client.submit(_run_checked, fn, expected, items, *args, key=key, pure=False)
        running[key] = (future, items, suspect)
        done.add(future)

    def submit() -> None:
        if suspects and not any(s for _, _, s in running.values()):
            send([suspects.popleft()], True)
        ahead = threads_of(client) * (1 + AHEAD_PER_THREAD)
        while todo and len(running) < ahead:
            send(todo.popleft(), False)

    total = sum(len(b) for b in batches)
    with tqdm(total=total, desc=desc, unit="call", disable=not progress) as bar:
        try:
            submit()
            while running:
                future = next(done)
                _, items, suspect = running.pop(str(future.key))
                try:
                    result = future.result()
                except KilledWorker as exc:
                    if not suspect:
                        suspects.extend(items)
                        submit()
                        continue
                    reason = (
                        "its worker stopped (killed, or out of memory) every time it was "
                        f"tried ({exc}); not tried again"
                    )
                    if on_lost is None:
                        raise ClusterError(f"{desc}: a task {reason}") from None
                    result = [on_lost(items[0], reason)]
                finally:
                    future.release()
                submit()
                bar.update(len(items))
                yield result
        except CancelledError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterError(
                f"lost the Dask scheduler during the run ({first})"
                + (f"; {after_loss}" if after_loss else "")
            ) from None
        finally:
            if running:  # stopped early (an error, Ctrl-C): nothing left queued for us
                client.cancel([f for f, _, _ in running.values()])
