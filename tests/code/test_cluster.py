"""Corpus work on a Dask cluster (issue 18): the same bytes as a local run, no call lost
to a killed worker, a stopped run resumed from the feature cache, bad clusters refused.

The clusters are real: ``distributed.LocalCluster`` with two worker processes of one
thread each (and a ``dask worker`` started from another copy of the code).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from distributed import Client, LocalCluster
from typer.testing import CliRunner

import training.features as features_stage
from callsift import app, main
from classifier.manifest import write_manifest
from tests.code.test_features import _rustle, _small_manifest, _speech_call
from training.cluster import code_fingerprint, map_on_cluster
from training.features import extract_features
from training.simulate import simulate_corpus
from training.train import load_training_table

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _local_cluster(**config: object) -> LocalCluster:
    with dask.config.set(config):  # read by the scheduler when it starts
        return LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,  # the killed workers' warnings
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # One failure allowed: a task survives one killed worker, and a call that kills
    # every worker it meets is given up after two.
    with _local_cluster(**{"distributed.scheduler.allowed-failures": 1}) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as c:
        yield c


def _longer_manifest(tmp: Path, n: int = 8, seconds: float = 20.0) -> Path:
    """n calls of 20 s: one call per cluster task (see cut_by_work), long enough to be
    caught in the middle."""
    (tmp / "audio").mkdir(parents=True)
    rows = []
    for i in range(n):
        y = _speech_call(i, seconds) if i % 2 == 0 else _rustle(i, seconds)
        sf.write(tmp / f"audio/c{i}.wav", y, 8000, subtype="ULAW")
        rows.append(
            {
                "call_id": f"c{i}",
                "caller_id": f"+62812345000{i % 3}",
                "started_at": f"2025-06-01T{10 + i}:00:00+08:00",
                "duration_s": f"{seconds}",
                "audio_path": f"audio/c{i}.wav",
                "label": "ghost" if i % 2 else "emergency",
            }
        )
    return write_manifest(rows, tmp / "manifest.csv")


@pytest.fixture(scope="module")
def longer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The 8-call manifest and its feature table from a local run (default prefixes)."""
    manifest = _longer_manifest(tmp_path_factory.mktemp("longer"))
    table, failures = extract_features(
        manifest, n_jobs=1, progress=False, prefixes=features_stage.DEFAULT_PREFIXES
    )
    assert failures.empty
    return manifest, table


def _entries(cache: Path) -> dict[str, int]:
    """The feature cache's entries (one per call and prefix) and when each was written."""
    return {str(p): p.stat().st_mtime_ns for p in cache.rglob("output.pkl")}


def test_features_on_a_cluster_are_the_bytes_of_a_local_run(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """`callsift features` with DASK_SCHEDULER_ADDRESS: the same parquet and errors.csv
    bytes as without, the failed call reported the same way (and not retried)."""
    manifest = _small_manifest(tmp_path, corrupt=2)
    local = runner.invoke(app, ["features", str(manifest), "--out", str(tmp_path / "a.parquet")])
    remote = runner.invoke(
        app,
        ["features", str(manifest), "--out", str(tmp_path / "b.parquet")],
        env={"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address},
    )
    assert local.exit_code == remote.exit_code == 1, remote.output
    assert "failed: c2" in remote.output and "1 call(s) failed" in remote.output
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "a.errors.csv").read_bytes() == (tmp_path / "b.errors.csv").read_bytes()


def test_simulate_on_a_cluster_writes_the_local_corpus(client: Client, tmp_path: Path) -> None:
    a = simulate_corpus(
        tmp_path / "a", preset="purworejo", n_calls=8, seed=5, n_jobs=1, progress=False
    )
    b = simulate_corpus(
        tmp_path / "b", preset="purworejo", n_calls=8, seed=5, progress=False, cluster=client
    )
    assert a.read_bytes() == b.read_bytes()
    files = sorted(p.name for p in (a.parent / "audio").iterdir())
    assert files == sorted(p.name for p in (b.parent / "audio").iterdir()) and len(files) == 8
    for name in files:
        assert (a.parent / "audio" / name).read_bytes() == (b.parent / "audio" / name).read_bytes()


def test_train_features_on_a_cluster_are_the_local_table(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """train's feature stage: two manifests through one connection, the same table."""
    manifests = []
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        manifests.append(_small_manifest(tmp_path / name, n=3))
    local, failed_local = load_training_table(
        manifests, n_jobs=1, cache_dir=None, timezone=None, progress=False, prefixes=(2.0,)
    )
    remote, failed_remote = load_training_table(
        manifests,
        n_jobs=1,
        cache_dir=None,
        timezone=None,
        progress=False,
        prefixes=(2.0,),
        cluster=cluster.scheduler_address,
    )
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    pd.testing.assert_frame_equal(failed_local, failed_remote)


def test_evaluate_on_a_cluster_writes_the_local_scores(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """`callsift evaluate --cluster`: the same scores.csv and errors.csv bytes (a small
    model trained here: the shipped one may be mid-rebuild)."""
    from tests.code.test_model import make_table
    from training.train import train_table

    model = tmp_path / "model"
    table = make_table(200, seed=1).assign(source="0")
    train_table(table, model, manifests=["x/manifest.csv"], params={"max_iter": 10, "n_folds": 3})
    (tmp_path / "calls").mkdir()
    manifest = _small_manifest(tmp_path / "calls", corrupt=4)
    outs = []
    for name, extra in (("local", []), ("remote", ["--cluster", cluster.scheduler_address])):
        out = tmp_path / name
        args = ["evaluate", str(manifest), "--out", str(out), "--model", str(model), *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outs.append(out)
    for name in ("scores.csv", "errors.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_a_worker_killed_mid_run_loses_no_call(
    cluster: LocalCluster, client: Client, longer: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    manifest, expected = longer
    cache = tmp_path / "cache"
    pids = client.run(os.getpid)
    killed: list[str] = []

    def kill_one_busy_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            started = cache.exists() and bool(_entries(cache))  # a call is done
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if started and busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    # The scheduler's transition log (its last 1,000 transitions): the keys before this run.
    before = {t[0] for t in cluster.scheduler.transition_log}
    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    table, failures = extract_features(
        manifest,
        progress=False,
        prefixes=features_stage.DEFAULT_PREFIXES,
        cache_dir=cache,
        cluster=client,
    )
    killer.join()
    assert killed, "no worker was killed during the run"
    pd.testing.assert_frame_equal(expected, table, check_exact=True)
    assert failures.empty
    # The killed worker's task ran again on a worker (processing twice).
    log = [t for t in cluster.scheduler.transition_log if t[0] not in before]
    runs = Counter(t[0] for t in log if str(t[0]).startswith("callsift-") and t[2] == "processing")
    assert max(runs.values()) >= 2, runs


def test_a_stopped_run_resumes_from_the_cache(
    cluster: LocalCluster, longer: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """The client is killed mid-run; the same command again does only the calls left, and
    the table is the local one."""
    manifest, expected = longer
    cache = tmp_path / "cache"
    out = tmp_path / "f.parquet"
    args = ["features", str(manifest), "--out", str(out), "--cache", str(cache)]
    cli = [sys.executable, "-c", "from callsift import main; main()", *args]
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": cluster.scheduler_address}
    proc = subprocess.Popen(cli, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(_entries(cache) if cache.exists() else {}) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be stopped"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    done = _entries(cache)
    assert 4 <= len(done) < 8 * 4  # stopped in the middle (4 rows per 20 s call)
    result = runner.invoke(app, args, env={"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address})
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(expected, pd.read_parquet(out), check_exact=True)
    after = _entries(cache)
    assert {k: after[k] for k in done} == done  # finished calls were not featured again
    assert len(after) == 8 * 4


def test_a_call_that_kills_every_worker_is_given_up_and_the_rest_done(client: Client) -> None:
    def _explode(items: list[str]) -> list[str]:
        """Kills its worker on the poisoned item, as a decoder crash would (defined here,
        so it is sent by value: the restarted workers need not import this module)."""
        if "poison" in items:
            os._exit(1)
        return [x.upper() for x in items]

    results = [
        r
        for done in map_on_cluster(
            client,
            _explode,
            [["a", "poison", "b"], ["c"]],
            desc="test",
            progress=False,
            on_lost=lambda item, reason: f"lost {item}: {reason}",
        )
        for r in done
    ]
    # The task of three died twice (the allowed failure, then one more): its calls were
    # tried again one by one, and only the poisoned one was given up.
    assert sorted(results)[:3] == ["A", "B", "C"] and len(results) == 4
    assert sorted(results)[3].startswith("lost poison: its worker stopped")


def _main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`callsift ARGS` as the console script runs it (errors become one line and exit 2)."""
    monkeypatch.setattr(sys, "argv", ["callsift", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    return int(stopped.value.code or 0), capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_address_that_does_not_answer_is_named_within_10_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused, silent (accepts and never answers) or malformed: one `error:` line naming
    the address, exit 2, within 10 s, nothing written."""
    manifest = _small_manifest(tmp_path, n=1)
    out = tmp_path / "f.parquet"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        for address in (
            f"tcp://127.0.0.1:{_free_port()}",
            f"tcp://127.0.0.1:{silent.getsockname()[1]}",
            "scheduler-without-port",
        ):
            args = ["features", str(manifest), "--out", str(out), "--cluster", address]
            start = time.monotonic()
            code, err = _main(args, monkeypatch, capsys)
            assert time.monotonic() - start < 10
            assert code == 2, err
            assert err.startswith("error: ") and address in err and err.count("\n") == 1, err
            assert not out.exists()
    finally:
        silent.close()


def test_a_worker_with_another_callsift_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `dask worker` running a copy of callsift 0.0.9: refused, both versions named."""
    copy = tmp_path / "other"
    for pkg in ("classifier", "training"):
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "classifier" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.0.9"'))
    manifest = _small_manifest(tmp_path, n=2)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        scheduler = LocalCluster(n_workers=0, dashboard_address=":0", silence_logs=logging.CRITICAL)
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dask"),
            "worker",
            scheduler.scheduler_address,
            "--nthreads",
            "1",
            "--no-dashboard",
        ],
        env={**os.environ, "PYTHONPATH": str(copy)},
        cwd=copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(scheduler, set_as_default=False) as c:
            c.wait_for_workers(1, timeout=60)
            theirs = next(iter(c.run(code_fingerprint).values()))
        assert theirs != code_fingerprint()
        out = tmp_path / "f.parquet"
        cache = tmp_path / "cache"
        args = ["features", str(manifest), "--out", str(out), "--cache", str(cache)]
        code, err = _main([*args, "--cluster", scheduler.scheduler_address], monkeypatch, capsys)
        assert code == 2 and err.startswith("error: worker tcp://"), err
        assert f"callsift 0.0.9 (code {theirs})" in err
        assert f"callsift 0.1.0 (code {code_fingerprint()})" in err
        assert not out.exists() and not any(cache.rglob("output.pkl"))
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        scheduler.close()


def test_cluster_tasks_are_a_few_seconds_of_work() -> None:
    from training.cluster import cut_by_work

    calls = list(range(1000))
    work = [60.0 + 37.0] * 1000  # one-minute calls with the default prefixes
    batches = cut_by_work(calls, work, per_task=features_stage.CLUSTER_TASK_AUDIO_S, threads=2)
    assert [c for b in batches for c in b] == calls
    assert {len(b) for b in batches[:-1]} == {41}  # 41 x 97 s of audio: ~2 s of work
    few = cut_by_work(calls[:20], work[:20], per_task=4000.0, threads=4)
    assert len(few) == 20  # a small corpus: at least 4 tasks per worker thread
    assert np.all([len(b) >= 1 for b in cut_by_work([1, 2], [1e6, 1.0], per_task=5.0, threads=1)])
