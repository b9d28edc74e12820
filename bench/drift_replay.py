"""Replay manifests through the service and read its drift: does it warn when it should?

Each call of the manifests is registered (``POST /v1/calls``) and its recording uploaded
(``POST /v1/calls/{id}/audio``) in start order, on a fresh SQLite database of the real
app, then given its label as the call-taker's disposition; finally ``GET /v1/model``
gives the drift, printed as JSON with the time taken and the flags the service gave.

Calls keep their hour and weekday: the manifest is moved forward by whole weeks so that
its last call starts an hour ago, and the drift window covers all of it. A replay
cannot wait for the call-takers: each disposition is dated at the end of its call (as
training assumes for a manifest without ``label_at``), so later calls of the number see
it in their history, as they would have.

    .venv/bin/python bench/drift_replay.py --model models/default \
        --manifest runs/reference-sim/ken300-replay/manifest.csv
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.db import Call
from api.main import create_app
from api.service import ModelHolder, load_scoring_model
from api.settings import Settings
from classifier.manifest import load_manifest


def replay(
    model_dir: Path, manifests: list[Path], *, min_calls: int, dispositions: bool = True
) -> dict[str, Any]:
    calls = pd.concat([load_manifest(m) for m in manifests], ignore_index=True)
    calls = calls.sort_values("started_at_utc").reset_index(drop=True)
    first, last = calls["started_at_utc"].iloc[0], calls["started_at_utc"].iloc[-1]
    now = datetime.now(UTC)
    weeks = math.ceil((now - timedelta(hours=1) - last.to_pydatetime()) / timedelta(weeks=1)) - 1
    shift = timedelta(weeks=max(weeks, 0))
    window_days = min(366, math.ceil((now - (first.to_pydatetime() + shift)).days) + 1)
    holder = ModelHolder()
    holder.set_for_tests(load_scoring_model(model_dir=model_dir))
    flags: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp}/callsift.db",
            data_dir=Path(tmp) / "data",
            drift_min_calls=min_calls,
            drift_window_days=window_days,
            drift_cache_s=0,
            max_audio_bytes=50 * 1024 * 1024,
        )
        app = create_app(settings, models=holder)
        t0 = time.perf_counter()
        with TestClient(app) as client:
            store = app.state.runtime.store
            key, _ = store.create_key(role="admin", name="replay", actor="cli")
            auth = {"X-API-Key": key}
            problems: list[str] = []
            for k, row in calls.iterrows():
                at = row["started_at_utc"].to_pydatetime() + shift
                call_id = f"r{k:06d}"
                body = {
                    "call_id": call_id,
                    "caller_id": str(row["caller_id"] or ""),
                    "started_at": at.astimezone(
                        timezone(timedelta(seconds=int(row["utc_offset_s"])))
                    ).isoformat(),
                }
                r = client.post("/v1/calls", json=body, headers=auth)
                if r.status_code != 200:
                    problems.append(r.text[:200])
                    continue
                with open(row["audio_file"], "rb") as fh:
                    r = client.post(
                        f"/v1/calls/{call_id}/audio",
                        files={"file": (Path(row["audio_file"]).name, fh.read())},
                        params={"caller_channel": row["caller_channel"] or "mix"},
                        headers=auth,
                    )
                if r.status_code != 200:
                    problems.append(r.text[:200])
                    continue
                flags.append(r.json()["flag"])
                if dispositions and row["label"]:
                    r = client.post(
                        f"/v1/calls/{call_id}/disposition",
                        json={"label": row["label"]},
                        headers=auth,
                    )
                    if r.status_code != 200:
                        problems.append(r.text[:200])
                        continue
                    known = at + timedelta(seconds=float(row["duration_s"]))
                    with store.engine.begin() as conn:
                        conn.execute(
                            update(Call).where(Call.call_id == call_id).values(label_at=known)
                        )
            replayed = time.perf_counter() - t0
            t1 = time.perf_counter()
            drift = client.get("/v1/model", headers=auth).json()["drift"]
            drift_s = time.perf_counter() - t1
    return {
        "manifests": [str(m) for m in manifests],
        "dispositions": dispositions,
        "calls": len(calls),
        "failed": len(problems),
        "problems": sorted(set(problems))[:5],
        "window_days": window_days,
        "replay_s": round(replayed, 1),
        "drift_s": round(drift_s, 3),
        "flagged": {
            kind: round(sum(f.endswith(f"_{kind}") for f in flags) / max(len(flags), 1), 6)
            for kind in ("prank", "ghost")
        },
        "status": drift["status"],
        "warning": drift["warning"],
        "drift_calls": drift["calls"],
        "groups": {g["group"]: g["psi"] for g in drift["groups"]},
        "features": {f: v for g in drift["groups"] for f, v in g["features"].items()},
        "scores": {s["score"]: s["psi"] for s in drift["scores"]},
        "flag_rates": {
            r["flag"]: {k: r[k] for k in ("rate", "reference", "ratio", "p_value", "shifted")}
            for r in drift["flag_rates"]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, action="append", required=True)
    parser.add_argument("--min-calls", type=int, default=200)
    parser.add_argument(
        "--no-dispositions", action="store_true", help="record no outcome (no labelled history)"
    )
    args = parser.parse_args()
    out = replay(
        args.model, args.manifest, min_calls=args.min_calls, dispositions=not args.no_dispositions
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
