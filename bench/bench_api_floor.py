"""The framework's floor: what a request costs before callsift does any work.

Adds probe routes that do nothing to the real app (same middleware, same key check)
and loads each with wrk on one uvicorn worker, side by side in one run:

- ``GET /healthz``;
- POST with the call body validated, sync route;
- POST with the body and the API key and role check, sync route;
- the same as an async route (no thread-pool hop).

    .venv/bin/python bench/bench_api_floor.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

PORT = 8797


def make_app() -> Any:
    """The service app with three probe routes (uvicorn factory)."""
    from api.deps import CallTakerDep
    from api.main import create_app
    from api.schemas import CallIn

    app = create_app()

    @app.post("/probe/validate")
    def validate(body: CallIn) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/probe/auth")
    def auth(body: CallIn, principal: CallTakerDep) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/probe/auth-async")
    async def auth_async(body: CallIn, principal: CallTakerDep) -> dict[str, bool]:
        return {"ok": True}

    return app


def wrk(url: str, script: Path | None, conns: int, seconds: int) -> tuple[float, float]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p50 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return p50, float(rps.group(1)) if rps else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="callsift-floor-"))
    env = {
        **os.environ,
        "CALLSIFT_DATABASE_URL": f"sqlite:///{tmp / 'floor.db'}",
        "CALLSIFT_DATA_DIR": str(tmp / "data"),
        "CALLSIFT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(Path(__file__).resolve().parent),
    }
    key = subprocess.run(
        [str(Path(sys.executable).with_name("callsift")), "keys", "create", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import uvicorn; uvicorn.run('bench_api_floor:make_app', factory=True, "
            f"port={PORT}, log_level='warning', access_log=False)",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{PORT}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.body = \'{"call_id":"a1","caller_id":"+6281234567890",'
            '"started_at":"2025-06-03T10:00:00+07:00"}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-API-Key"] = "{key}"\n'
        )
        rows = [
            ("GET /healthz", base + "/healthz", None),
            ("POST, body validated, sync route", base + "/probe/validate", script),
            ("POST, body + key + role, sync route", base + "/probe/auth", script),
            ("POST, body + key + role, async route", base + "/probe/auth-async", script),
        ]
        print("| route | p50 ms (1 connection) | requests/s (1) | requests/s (16) |")
        print("|---|---|---|---|")
        for name, url, lua in rows:
            wrk(url, lua, 1, 2)  # warm-up
            p50, rps1 = wrk(url, lua, 1, args.seconds)
            _, rps16 = wrk(url, lua, 16, args.seconds)
            print(f"| {name} | {p50:.2f} | {rps1:.0f} | {rps16:.0f} |")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
