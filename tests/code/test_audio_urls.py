"""A manifest's audio_path as a URL (issue 18.3): http(s)://, s3://, file://, gs://.

The servers are real and on loopback: Python's http.server in a thread over a folder of
WAV files, and moto's S3 server (``ThreadedMotoServer``) with IAM signatures checked.
The features of calls read from URLs must be the bits of the same files read locally;
a URL that is not found, not allowed or carries credentials fails its call only, and a
credential never reaches the output, the logs or ``.errors.csv``.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

import training.features as features_stage
from callsift import app
from classifier.errors import InvalidParameterError
from classifier.manifest import load_manifest, validate_manifest, write_manifest
from classifier.remote import AudioSourceError, local_path, read_url, redact_url, url_problem
from tests.code.test_features import _rustle
from training.features import extract_features

SR = 8000
N = 6
BUCKET = "centre-recordings"
SECRET = "s3cr3t-Zq9vX2"  # the credential a manifest row carries: must never be shown
runner = CliRunner()


def _tone_bursts(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = rng.uniform(150, 300)
    env = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0).astype(np.float32)
    y = 0.3 * np.sin(2 * np.pi * f * t) * env + 0.002 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N recordings of 3 s from seeded generators (mu-law and PCM, one stereo)."""
    root = tmp_path_factory.mktemp("urls")
    (root / "audio").mkdir()
    for i in range(N):
        y = _rustle(seed=i, seconds=3.0) if i % 2 else _tone_bursts(i, 3.0)
        if i == 4:
            sf.write(root / "audio" / f"c{i}.wav", np.stack([y, y[::-1]], 1), SR, "PCM_16")
        else:
            sf.write(root / "audio" / f"c{i}.wav", y, SR, "ULAW" if i % 2 else "PCM_16")
    return root


class _Handler(SimpleHTTPRequestHandler):
    seen: list[str] = []  # noqa: RUF012 - the request lines, for the test to read

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.seen.append(self.path)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test's stderr is checked


@pytest.fixture(scope="module")
def http_url(corpus: Path) -> Iterator[str]:
    handler = functools.partial(_Handler, directory=str(corpus))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def s3(corpus: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server with the recordings in BUCKET, signatures checked; yields the
    environment a process needs to read them (a real IAM user's key)."""
    import boto3
    from moto import settings
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    setup |= {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="callsift")
    iam.put_user_policy(
        UserName="callsift",
        PolicyName="read",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "s3:*", "Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName="callsift")["AccessKey"]
    s3c = boto3.client("s3", **setup)
    s3c.create_bucket(Bucket=BUCKET)
    for f in sorted((corpus / "audio").iterdir()):
        s3c.put_object(Bucket=BUCKET, Key=f"2025/{f.name}", Body=f.read_bytes())
    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request is signed-checked
    try:
        yield {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before
        server.stop()


def _rows(paths: list[str]) -> list[dict[str, str]]:
    return [
        {
            "call_id": f"c{i}",
            "caller_id": "+6281234500001" if i < 3 else "",
            "started_at": f"2025-06-01T1{i}:00:00+08:00",
            "duration_s": "3.0",
            "audio_path": p,
            "label": "ghost" if i % 2 else "emergency",
        }
        for i, p in enumerate(paths)
    ]


def _manifest(folder: Path, name: str, paths: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_manifest(_rows(paths), folder / name)


@pytest.fixture
def s3_env(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in s3.items():
        monkeypatch.setenv(k, v)
    return s3


def test_features_from_urls_are_the_bits_of_local_files(
    corpus: Path, http_url: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    local = [f"audio/c{i}.wav" for i in range(N)]
    mixed = [
        f"{http_url}/audio/c0.wav",
        f"s3://{BUCKET}/2025/c1.wav",
        (corpus / "audio" / "c2.wav").as_uri(),  # file://
        "audio/c3.wav",  # relative, as today
        f"s3://{BUCKET}/2025/c4.wav",  # stereo
        str(corpus / "audio" / "c5.wav"),  # absolute
    ]
    want, failed = extract_features(
        _manifest(corpus, "local.csv", local), n_jobs=1, progress=False, prefixes=(2.0,)
    )
    assert failed.empty
    cache = tmp_path / "cache"
    got, failed = extract_features(
        _manifest(corpus, "mixed.csv", mixed),
        n_jobs=1,
        progress=False,
        prefixes=(2.0,),
        cache_dir=cache,
    )
    assert failed.empty, failed.to_dict("records")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    # The cache key of a URL is its content's: the local manifest finds every entry the
    # URLs made (no new file in the cache), and a second run of the URLs gives the same.
    entries = sorted(p.name for p in cache.rglob("*") if p.is_file())
    again, _ = extract_features(
        _manifest(corpus, "local.csv", local),
        n_jobs=1,
        progress=False,
        prefixes=(2.0,),
        cache_dir=cache,
    )
    assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == entries
    pd.testing.assert_frame_equal(again, want, check_exact=True)
    frame = load_manifest(corpus / "mixed.csv")
    assert frame["audio_file"][0] == mixed[0] and frame["audio_file"][2] == str(
        (corpus / "audio" / "c2.wav").resolve()
    )


def test_a_bad_url_fails_its_call_and_the_rest_are_done(
    corpus: Path, http_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _Handler.seen.clear()
    paths = [
        f"{http_url}/audio/c0.wav",
        f"{http_url}/audio/missing.wav",  # 404
        "ftp://127.0.0.1/audio/c2.wav",  # not allowed
        f"https://ann:{SECRET}@127.0.0.1:1/audio/c3.wav",  # credentials
        f"{http_url}/audio/c4.wav?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}",
        "memory://audio/c5.wav",  # not allowed
    ]
    manifest = _manifest(tmp_path, "bad.csv", paths)
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["features", str(manifest), "--out", str(out)])
    assert result.exit_code == 1, result.output
    table = pd.read_parquet(out)
    assert list(table.loc[table["prefix_s"].isna(), "call_id"]) == ["c0"]
    errors = pd.read_csv(tmp_path / "f.errors.csv", dtype=str)
    why = dict(zip(errors["call_id"], errors["error"], strict=True))
    assert set(why) == {"c1", "c2", "c3", "c4", "c5"}
    assert "not found" in why["c1"] and "missing.wav" in why["c1"]
    assert "'ftp:' is not allowed" in why["c2"] and "CALLSIFT_AUDIO_URL_SCHEMES" in why["c2"]
    assert "'memory:' is not allowed" in why["c5"]
    assert "carries credentials" in why["c3"] and "https://***@127.0.0.1:1" in why["c3"]
    assert "X-Amz-Signature" in why["c4"] and "X-Amz-Signature=***" in why["c4"]
    shown = dict(zip(errors["call_id"], errors["audio_path"], strict=True))
    assert shown["c4"].endswith("c4.wav?X-Amz-Credential=***&X-Amz-Signature=***")
    assert "Traceback" not in result.output
    for text in (result.output, (tmp_path / "f.errors.csv").read_text(), caplog.text):
        assert SECRET not in text and "AKIA" not in text
    # A URL with credentials is never requested; the 404 once (fsspec's HEAD, then GET
    # for servers without HEAD), no endless retry.
    assert not any("c4.wav" in p for p in _Handler.seen)
    assert sum("missing.wav" in p for p in _Handler.seen) <= 2
    # validate says the same per row, redacted.
    problems = [str(p) for p in validate_manifest(manifest)]
    assert any("line 3" in p and "not found" in p for p in problems)
    assert all(SECRET not in p for p in problems)


def test_s3_with_a_wrong_secret_is_denied_clearly(
    corpus: Path, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + SECRET
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    paths = [f"s3://{BUCKET}/2025/c0.wav"]
    manifest = _manifest(tmp_path, "s3.csv", paths)
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["features", str(manifest), "--out", str(out)])
    assert result.exit_code == 1
    errors = pd.read_csv(tmp_path / "f.errors.csv", dtype=str)
    assert f"s3://{BUCKET}/2025/c0.wav: access denied" in errors["error"][0]
    assert "AWS_SECRET_ACCESS_KEY" in errors["error"][0]
    assert "Traceback" not in result.output and wrong not in result.output
    # The right secret again: a key that is not there is "not found", the rest done.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env["AWS_SECRET_ACCESS_KEY"])
    with pytest.raises(AudioSourceError, match=f"s3://{BUCKET}/2025/nope.wav not found"):
        read_url(f"s3://{BUCKET}/2025/nope.wav")
    assert read_url(paths[0]) == (corpus / "audio" / "c0.wav").read_bytes()


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("gcsfs") is not None, reason="gcsfs is installed"
)
def test_gs_without_gcsfs_says_how_to_get_it() -> None:
    why = url_problem("gs://bucket/2025/c0.wav")
    assert why is not None and "pip install gcsfs" in why
    with pytest.raises(AudioSourceError, match="pip install gcsfs"):
        read_url("gs://bucket/2025/c0.wav")


def test_redaction_and_refusals() -> None:
    url = f"https://u:{SECRET}@h.example/a.wav?sig={SECRET}&token={SECRET}&v=1#access_token=x"
    assert redact_url(url) == ("https://***@h.example/a.wav?sig=***&token=***&v=1#access_token=***")
    assert redact_url("audio/c0.wav") == "audio/c0.wav"
    assert redact_url("C:/calls/a.wav") == "C:/calls/a.wav"  # a drive, not a scheme
    assert url_problem(f"s3://AKIA:{SECRET}@bucket/k.wav") is not None
    assert url_problem("https://h.example/a.wav?keyframe=1") is None
    assert url_problem("data:audio/wav;base64,UklGRg==") is not None
    # file:// is this machine's path (and the local code); another host's is refused.
    assert local_path("file://localhost/calls/a%20b.wav") == "/calls/a b.wav"
    assert local_path("file:///calls/a.wav") == "/calls/a.wav"
    assert "names another machine" in str(url_problem("file://recorder/calls/a.wav"))


def test_schemes_size_and_timeout_are_settings(
    http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{http_url}/audio/c0.wav"
    monkeypatch.setenv("CALLSIFT_AUDIO_URL_SCHEMES", "s3")
    with pytest.raises(AudioSourceError, match="'http:' is not allowed; allowed: s3"):
        read_url(url)
    monkeypatch.delenv("CALLSIFT_AUDIO_URL_SCHEMES")
    monkeypatch.setenv("CALLSIFT_AUDIO_URL_MAX_BYTES", "1000")
    with pytest.raises(AudioSourceError, match="larger than 1000 bytes"):
        read_url(url)
    monkeypatch.setenv("CALLSIFT_AUDIO_URL_MAX_BYTES", "lots")
    with pytest.raises(InvalidParameterError, match="CALLSIFT_AUDIO_URL_MAX_BYTES is 'lots'"):
        read_url(url)
    monkeypatch.delenv("CALLSIFT_AUDIO_URL_MAX_BYTES")
    # A server that accepts and never answers: the call fails after the timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("CALLSIFT_AUDIO_URL_TIMEOUT_S", "0.5")
        start = time.perf_counter()
        with pytest.raises(AudioSourceError, match=r"no answer within 0\.5 s"):
            read_url(f"http://127.0.0.1:{silent.getsockname()[1]}/a.wav")
        assert time.perf_counter() - start < 5
    # Nothing listening: refused, tried twice at most, said at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(AudioSourceError, match=f"127.0.0.1:{port}/a.wav cannot be read"):
        read_url(f"http://127.0.0.1:{port}/a.wav")
    assert time.perf_counter() - start < 5
    assert os.environ.get("CALLSIFT_AUDIO_URL_SCHEMES") is None


# Spies of the cluster test, at module level: Dask pickles a task's function, and a
# module's function goes by reference (a closure would be copied with its lists).
_READERS: list[str] = []
_SHIPPED: list[str] = []
_REAL_READ = features_stage.read_url
_REAL_BATCH = features_stage._run_batch


def _spy_read(url: str, **kwargs: Any) -> bytes:
    _READERS.append(threading.current_thread().name)
    return _REAL_READ(url, **kwargs)


def _spy_batch(jobs: Any, *args: Any) -> Any:
    _SHIPPED.extend(job.path for job in jobs)
    return _REAL_BATCH(jobs, *args)


def test_on_a_cluster_the_workers_read_the_urls(
    corpus: Path,
    http_url: str,
    s3_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`features --cluster`: the URLs go to the workers as text and each worker reads
    its own (never this client's thread); the parquet and errors.csv are the bytes of a
    local run. In-process workers (threads): a worker process takes ~10 s to start."""
    from distributed import LocalCluster

    paths = [
        f"{http_url}/audio/c0.wav",
        f"s3://{BUCKET}/2025/c1.wav",
        f"{http_url}/audio/missing.wav",
        "ftp://127.0.0.1/c3.wav",
    ]
    manifest = _manifest(tmp_path, "m.csv", paths)
    local = runner.invoke(app, ["features", str(manifest), "--out", str(tmp_path / "a.parquet")])
    assert local.exit_code == 1, local.output

    _READERS.clear()
    _SHIPPED.clear()
    monkeypatch.setattr(features_stage, "read_url", _spy_read)
    monkeypatch.setattr(features_stage, "_run_batch", _spy_batch)
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",  # an address --cluster takes
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as cluster:
        remote = runner.invoke(
            app,
            ["features", str(manifest), "--out", str(tmp_path / "b.parquet")],
            env={"DASK_SCHEDULER_ADDRESS": cluster.scheduler_address},
        )
    assert remote.exit_code == 1 and "wrote" in remote.output, remote.output
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "a.errors.csv").read_bytes() == (tmp_path / "b.errors.csv").read_bytes()
    errors = pd.read_csv(tmp_path / "b.errors.csv", dtype=str)
    assert list(errors["call_id"]) == ["c2", "c3"]
    # The refused ftp: row never left the client; the others went as URLs, not bytes.
    assert sorted(_SHIPPED) == sorted(paths[:3])
    assert len(_READERS) == 3 and threading.main_thread().name not in _READERS
