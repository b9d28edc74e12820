"""Schemathesis against `callsift serve`, every check, thousands of requests (issue 19).

Starts the service as users start it (``callsift serve``, a fresh database: SQLite, and
PostgreSQL when it answers on 127.0.0.1:5432), takes the admin key it prints, and runs
schemathesis's engine (examples, coverage, fuzzing and stateful phases, positive and
negative data, every check) as ``tests/api/test_openapi_fuzz.py`` does, with more
examples and other seeds. Writes the figures (requests, statuses, failures, time) as JSON
and prints each failure with a command that reproduces it.

    .venv/bin/python bench/fuzz_api.py --max-examples 60 --seeds 1 2 --out runs/fuzz_api.json

Traffic goes to the loopback only; each run is bounded by its examples.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.service import serve  # noqa: E402
from tests.api.conftest import fresh_pg_schema, postgres_user  # noqa: E402
from tests.api.fuzzing import fuzz, summary  # noqa: E402


def run(backend: str, *, port: int, max_examples: int, seed: int) -> dict[str, Any]:
    """One run on a fresh database of ``backend``; its figures and failures."""
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-api-")))
        url = (
            f"sqlite:///{root / 'callsift.db'}"
            if backend == "sqlite"
            else stack.enter_context(fresh_pg_schema())
        )
        env = {"CALLSIFT_DATABASE_URL": url, "CALLSIFT_DATA_DIR": str(root / "data")}
        server = stack.enter_context(serve(port=port, env=env, log=root / "server.log"))
        report = fuzz(server.base, server.key, max_examples=max_examples, seed=seed)
        figures = summary(report)
        figures.update(
            backend=backend,
            seed=seed,
            max_examples=max_examples,
            failure_list=report.failures,
            error_list=report.errors,
        )
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=60, help="per operation and phase")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fuzz_api.json")
    args = parser.parse_args(argv)
    runs = []
    for backend in args.backends:
        if backend == "postgresql" and postgres_user() is None:
            print("PostgreSQL not reachable on 127.0.0.1:5432: skipped", file=sys.stderr)
            continue
        for seed in args.seeds:
            start = time.monotonic()
            figures = run(backend, port=args.port, max_examples=args.max_examples, seed=seed)
            runs.append(figures)
            print(
                f"{backend} seed {seed}: {figures['requests']} requests in "
                f"{time.monotonic() - start:.0f} s, statuses {figures['statuses']}, "
                f"{figures['failures']} failures, {figures['errors']} errors",
                file=sys.stderr,
            )
            for line in figures["failure_list"] + figures["error_list"]:
                print(f"  {line}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=1))
    print(f"figures written to {args.out}", file=sys.stderr)
    return 1 if any(r["failures"] or r["errors"] for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
