"""Replay manifests through the service and read its drift: does it warn when it should?

Each call of the manifests is registered (``POST /v1/calls``, its start moved into the
last days, spacing kept in proportion) and its recording uploaded (``POST
/v1/calls/{id}/audio``), in start order, on a fresh SQLite database of the real app; then
``GET /v1/model`` gives the drift, printed as JSON with the time taken. Calls of the
presets the model was trained on (other seeds) should read ok; a corpus of another
centre, or of silent lines, should not. Figures in docs/model.md, "Drift".

    .venv/bin/python bench/drift_replay.py --model models/default \\
        --manifest runs/reference-sim/ken600/manifest.csv --limit 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from api.main import create_app
from api.service import ModelHolder, load_scoring_model
from api.settings import Settings
from classifier.manifest import load_manifest


def replay(
    model_dir: Path, manifests: list[Path], *, limit: int | None, min_calls: int, days: float
) -> dict[str, Any]:
    calls = pd.concat([load_manifest(m) for m in manifests], ignore_index=True)
    calls = calls.sort_values("started_at_utc").reset_index(drop=True)
    if limit is not None:
        calls = calls.head(limit)
    first, last = calls["started_at_utc"].iloc[0], calls["started_at_utc"].iloc[-1]
    span = max((last - first).total_seconds(), 1.0)
    end = datetime.now(UTC) - timedelta(minutes=10)
    start = end - timedelta(days=days)
    holder = ModelHolder()
    holder.set_for_tests(load_scoring_model(model_dir=model_dir))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{tmp}/callsift.db",
            data_dir=Path(tmp) / "data",
            drift_min_calls=min_calls,
            drift_cache_s=0,
            max_audio_bytes=50 * 1024 * 1024,
        )
        app = create_app(settings, models=holder)
        t0 = time.perf_counter()
        with TestClient(app) as client:
            store = app.state.runtime.store
            key, _ = store.create_key(role="admin", name="replay", actor="cli")
            auth = {"X-API-Key": key}
            failed = 0
            problems: list[str] = []
            for k, row in calls.iterrows():
                at = start + timedelta(
                    seconds=(row["started_at_utc"] - first).total_seconds() / span * days * 86400
                )
                call_id = f"r{k:06d}"
                offset = timedelta(seconds=int(row["utc_offset_s"]))
                body = {
                    "call_id": call_id,
                    "caller_id": str(row["caller_id"] or ""),
                    "started_at": at.astimezone(timezone(offset)).isoformat(),
                }
                r = client.post("/v1/calls", json=body, headers=auth)
                if r.status_code != 200:
                    failed += 1
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
                    failed += 1
                    problems.append(r.text[:200])
            replayed = time.perf_counter() - t0
            t1 = time.perf_counter()
            drift = client.get("/v1/model", headers=auth).json()["drift"]
            drift_s = time.perf_counter() - t1
    return {
        "manifests": [str(m) for m in manifests],
        "calls": len(calls),
        "failed": failed,
        "problems": sorted(set(problems))[:5],
        "replay_s": round(replayed, 1),
        "drift_s": round(drift_s, 3),
        "status": drift["status"],
        "warning": drift["warning"],
        "groups": {g["group"]: g["psi"] for g in drift["groups"]},
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
    parser.add_argument("--limit", type=int, default=None, help="first N calls by start")
    parser.add_argument("--min-calls", type=int, default=200)
    parser.add_argument("--days", type=float, default=6.0, help="days the calls are spread on")
    args = parser.parse_args()
    out = replay(
        args.model, args.manifest, limit=args.limit, min_calls=args.min_calls, days=args.days
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
