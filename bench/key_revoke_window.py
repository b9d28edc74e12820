"""How long a revoked API key keeps working on `callsift serve` (docs/security.md).

A worker trusts a key it verified for ``CALLSIFT_KEY_CACHE_S`` (10 s by default) before
asking the database again, so a revoked key keeps working until its cache entry is that
old: from 0 s (revoked just before its entry expired) to the full window (revoked just
after it was verified). This measures both on a real server, polling the key every
``--poll`` seconds:

1. the worst case: the key verified, then revoked at once;
2. ``--trials`` revocations at a random moment of the window (uniform over 0-10 s), as
   an outside tester meets them.

The revocation is the store's (what ``callsift keys revoke`` runs), timed when it has
committed.

    .venv/bin/python bench/key_revoke_window.py [--trials 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.store import Store  # noqa: E402
from bench.service import serve  # noqa: E402


def status(base: str, key: str) -> int:
    request = urllib.request.Request(base + "/v1/me", headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def trial(base: str, store: Store, *, delay_s: float, poll_s: float, limit_s: float) -> float:
    """Seconds from a key's revocation (``delay_s`` after it was verified) to its first 401."""
    token, info = store.create_key(role="call_taker", name="revoke window", actor="bench")
    assert status(base, token) == 200  # verified now, cached from now
    verified = time.monotonic()
    while time.monotonic() - verified < delay_s:
        assert status(base, token) == 200
        time.sleep(poll_s)
    store.revoke_key(info["id"], actor="bench")
    revoked = time.monotonic()
    while status(base, token) == 200:
        if time.monotonic() - revoked > limit_s:
            raise SystemExit(f"revoked key still accepted after {limit_s} s")
        time.sleep(poll_s)
    return time.monotonic() - revoked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between requests")
    parser.add_argument("--port", type=int, default=8947)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="revoke-")))
        url = args.database_url or f"sqlite:///{root / 'callsift.db'}"
        env = {"CALLSIFT_DATABASE_URL": url, "CALLSIFT_DATA_DIR": str(root / "data")}
        server = stack.enter_context(serve(port=args.port, env=env, log=root / "server.log"))
        store = Store(url, data_dir=root / "data")
        stack.callback(store.dispose)
        window = 10.0  # the default CALLSIFT_KEY_CACHE_S the server runs with
        limit = window + 5.0
        worst = trial(server.base, store, delay_s=0.0, poll_s=args.poll, limit_s=limit)
        delays = [rng.uniform(0.0, window) for _ in range(args.trials)]
        measured = [
            trial(server.base, store, delay_s=d, poll_s=args.poll, limit_s=limit) for d in delays
        ]
    result = {
        "key_cache_s": window,
        "poll_s": args.poll,
        "worst_case_s": round(worst, 2),
        "random_phase": [
            {"revoked_after_s": round(d, 2), "accepted_for_s": round(m, 2)}
            for d, m in zip(delays, measured, strict=True)
        ],
        "random_phase_median_s": round(statistics.median(measured), 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
