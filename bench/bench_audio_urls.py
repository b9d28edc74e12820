"""Features of recordings read from URLs against the same files read locally (issue 18.3).

    .venv/bin/python bench/bench_audio_urls.py --manifest /tmp/A-corpus/manifest.csv \
        --repeats 3

Serves the manifest's folder over loopback HTTP (``http.server`` in a thread) and from a
moto S3 server on loopback (``ThreadedMotoServer``, the dev extra's), writes one manifest
per source with the same calls (``audio/...`` as ``http://127.0.0.1:PORT/audio/...`` and
``s3://bench/audio/...``), and times ``extract_features`` on each in this process, one
process (``n_jobs=1``), the default prefixes, sources alternating (local, http, s3, local,
...) after one untimed warm-up run. Reported: the best wall time of each, x real time
(the manifest's audio seconds over it), the extra milliseconds per call over the local
run, and, with ``--cache``, the same with a warm feature cache (a hit still reads a
URL's bytes to hash them). The tables are compared with ``assert_frame_equal
(check_exact=True)``. Loopback has no network latency: a real store adds its round
trips (two per call: HEAD then GET) per call.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _http(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _s3(folder: Path, rels: list[str]) -> Any:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    client = boto3.client("s3")
    client.create_bucket(Bucket="bench")
    for rel in sorted(set(rels)):
        client.put_object(Bucket="bench", Key=rel, Body=(folder / rel).read_bytes())
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", action="store_true", help="also time a warm cache")
    args = parser.parse_args()

    from training.features import DEFAULT_PREFIXES, extract_features

    manifest = args.manifest.resolve()
    folder = manifest.parent
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    rels = list(frame["audio_path"])
    audio_s = frame["duration_s"].astype(float).sum()
    http, base = _http(folder)
    s3 = _s3(folder, rels)
    work = Path(tempfile.mkdtemp(prefix="bench-urls-"))
    sources = {"local": rels, "http": [f"{base}/{r}" for r in rels]}
    sources["s3"] = [f"s3://bench/{r}" for r in rels]
    manifests = {}
    for name, paths in sources.items():
        # Each manifest beside the original, so its relative paths still resolve.
        m = folder / f".bench-{name}.csv"
        frame.assign(audio_path=paths).to_csv(m, index=False)
        manifests[name] = m
    n = len(frame)
    print(f"{n} calls, {audio_s / 60:.1f} min of audio, prefixes {DEFAULT_PREFIXES}")
    try:
        tables: dict[str, pd.DataFrame] = {}

        def run(name: str, cache: Path | None = None) -> float:
            start = time.perf_counter()
            table, failed = extract_features(
                manifests[name],
                n_jobs=1,
                progress=False,
                prefixes=DEFAULT_PREFIXES,
                cache_dir=cache,
            )
            took = time.perf_counter() - start
            assert failed.empty, failed.head()
            if name in tables:
                pd.testing.assert_frame_equal(table, tables[name], check_exact=True)
            tables[name] = table
            return took

        run("local")  # warm-up: imports, numba kernels, librosa's lazy imports
        times: dict[str, list[float]] = {k: [] for k in sources}
        for _ in range(args.repeats):
            for name in sources:
                times[name].append(run(name))
        for name in sources:
            pd.testing.assert_frame_equal(tables[name], tables["local"], check_exact=True)
        rows = [("cold (no cache)", times)]
        if args.cache:
            cache = work / "cache"
            run("local", cache)  # fills the cache; the URLs share its entries
            warm: dict[str, list[float]] = {k: [] for k in sources}
            for _ in range(args.repeats):
                for name in sources:
                    warm[name].append(run(name, cache))
            rows.append(("warm cache", warm))
        print(
            f"load average at the end: {os.getloadavg()[0]:.1f}; tables identical to local "
            "(check_exact)"
        )
        print(f"{'run':16} {'source':6} {'best s':>8} {'x real time':>12} {'+ms/call':>9}")
        for label, timing in rows:
            local = min(timing["local"])
            for name, t in timing.items():
                extra = (min(t) - local) / n * 1000
                print(f"{label:16} {name:6} {min(t):8.2f} {audio_s / min(t):12.0f} {extra:9.1f}")
    finally:
        for m in manifests.values():
            m.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        http.shutdown()
        s3.stop()


if __name__ == "__main__":
    main()
