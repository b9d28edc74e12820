"""Weekly report (issue 21): time to build and render one week of N calls (goal < 2 s).

Seeds a fresh database through the store's public methods (register, audio score,
recording duration, disposition) with ``--calls`` calls in one past ISO week, plus as
many again over the 4 earlier weeks, then times ``GET /v1/reports/weekly`` end to end
(supervisor key, in-process ASGI client) and the query and rendering on their own.

    .venv/bin/python bench/bench_report.py [--calls 2000] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TZ = ZoneInfo("Asia/Makassar")
FLAGS = ("none", "none", "none", "possible_prank", "likely_prank", "possible_ghost")
LABELS = (None, "emergency", "non_emergency", "prank", "ghost")


def seed(store: object, monday: date, calls: int, rng: random.Random) -> None:
    from api.store import Store

    assert isinstance(store, Store)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=TZ)
    numbers = [f"+62812{rng.randrange(10**7):07d}" for _ in range(300)]
    for i in range(2 * calls):
        week = 0 if i < calls else rng.randrange(1, 5)
        at = start - timedelta(weeks=week) + timedelta(seconds=rng.randrange(7 * 86400))
        call_id = f"b-{i:06d}"
        meta = {"incident_type": rng.choice(("fire", "medical", "police"))} if i % 3 else {}
        store.register_call(
            call_id=call_id,
            caller_id=rng.choice(numbers),
            started_at=at,
            metadata=meta,
            actor="bench",
        )
        if i % 4:
            flag = rng.choice(FLAGS)
            store.save_score(
                call_id,
                {"flag": flag, "p_prank": rng.random(), "p_ghost": rng.random()},
                model_version="bench",
            )
            store.save_audio(call_id, b"RIFF" + call_id.encode(), ext="wav", duration_s=30.0)
        label = rng.choice(LABELS)
        if label:
            store.set_disposition(call_id, label=label, note=None, actor="bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.reports import build_report, render_html
    from api.settings import Settings
    from tests.api.conftest import fresh_pg_schema
    from tests.api.test_app_calls import preloaded_holder

    today = datetime.now(TZ).date()
    monday = today - timedelta(days=today.weekday() + 7)
    iso = monday.isocalendar()
    week = f"{iso.year}-W{iso.week:02d}"
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (
            f"sqlite:///{tmp / 'calls.db'}"
            if args.backend == "sqlite"
            else stack.enter_context(fresh_pg_schema())
        )
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=url,
            data_dir=tmp / "data",
            timezone="Asia/Makassar",
            log_level="WARNING",
        )
        app = create_app(settings, models=preloaded_holder())
        client = stack.enter_context(TestClient(app))
        store = app.state.runtime.store
        t0 = time.perf_counter()
        seed(store, monday, args.calls, random.Random(21))
        seeded_s = time.perf_counter() - t0
        token, _ = store.create_key(role="supervisor", name="bench", actor="cli")
        http, build, render = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get(
                "/v1/reports/weekly", params={"week": week}, headers={"X-API-Key": token}
            )
            http.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
            t0 = time.perf_counter()
            report = build_report(store, week=week, tz=TZ, unmask=True)
            build.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            render_html(report, lang="id")
            render.append(time.perf_counter() - t0)
        assert report.total == args.calls, report.total
        result = {
            "backend": args.backend,
            "week": week,
            "calls_in_week": report.total,
            "calls_read": 2 * args.calls,
            "seed_s": round(seeded_s, 1),
            "http_median_s": round(statistics.median(http), 3),
            "http_max_s": round(max(http), 3),
            "query_and_count_median_s": round(statistics.median(build), 3),
            "render_median_s": round(statistics.median(render), 4),
            "page_bytes": len(response.content),
        }
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
