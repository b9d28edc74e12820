"""Replay a simulated corpus through the service's public HTTP API, as a switchboard would.

Used by ``callsift demo --serve``. It talks to the service only over HTTP and its
WebSocket (httpx, websockets): calls registered as they arrive (``POST /v1/calls``),
their recordings posted (``POST /v1/calls/{id}/audio``) or, for a few, streamed live,
call-takers' dispositions, and supervisors' reviews of flagged numbers. So the demo is
also an end-to-end check of the API. Imports neither ``api`` nor a database.

The corpus' times are moved to end now (the API refuses ``started_at`` far in the
future, and the console shows recent calls), and each call is put into one of
``weeks`` consecutive weeks, whole weeks apart, so its hour and weekday stay as
simulated while the history spans weeks.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from classifier.errors import CallsiftError

log = logging.getLogger(__name__)

_STREAM_FRAME_BYTES = 1600  # 100 ms of 8 kHz 16-bit PCM, the largest frame allowed
_REVIEWED_SHARE = 0.5  # supervisors review about half the flagged numbers, leaving work
_UNLABELLED_EVERY = 10  # every tenth call is left without a disposition (flags count then)


class ReplayError(CallsiftError):
    """The service refused a request of the replay (it names the request and answer)."""


@dataclass
class ReplayStats:
    """What the replay did, counted from the service's answers."""

    calls: int = 0
    recordings: int = 0
    streams: int = 0
    dispositions: int = 0
    reviews: int = 0
    flagged_calls: int = 0
    wall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)


@dataclass(frozen=True)
class _Call:
    call_id: str
    caller_id: str
    started_at: datetime
    duration_s: float
    audio: Path
    caller_channel: str
    label: str


def load_corpus(manifest: Path, *, weeks: int = 3, end: datetime | None = None) -> list[_Call]:
    """The manifest's calls in order of arrival, moved to end at ``end`` (default now).

    Each call is shifted by 0 to ``weeks - 1`` whole weeks (by its id), so the corpus
    spans ``weeks`` weeks at the same hours and weekdays.
    """
    end = end or datetime.now(UTC)
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ReplayError(f"{manifest} has no calls")
    calls = []
    for i, row in enumerate(rows):
        start = datetime.fromisoformat(row["started_at"])
        calls.append((start + timedelta(weeks=i % weeks), row))
    last = max(s + timedelta(seconds=float(r["duration_s"])) for s, r in calls)
    # Whole days, so that hours of the day are kept; plus a margin under the future skew.
    shift = (
        timedelta(days=(end - last).days) if end > last else -timedelta(days=(last - end).days + 1)
    )
    out = [
        _Call(
            call_id=f"demo-{row['call_id']}",
            caller_id=row["caller_id"],
            started_at=start + shift,
            duration_s=float(row["duration_s"]),
            audio=manifest.parent / row["audio_path"],
            caller_channel=row.get("caller_channel") or "mix",
            label=row["label"],
        )
        for start, row in calls
    ]
    return sorted(out, key=lambda c: c.started_at)


class _Api:
    """The service's endpoints used by a switchboard, with each role's key."""

    def __init__(self, base_url: str, keys: Mapping[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = dict(keys)
        self.http = httpx.Client(base_url=self.base_url, timeout=60.0)

    def request(self, role: str, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, headers={"X-API-Key": self.keys[role]}, **kw)
        if r.status_code >= 400:
            raise ReplayError(f"{method} {path} as {role}: {r.status_code} {r.text[:300]}")
        return r.json()

    def register(self, call: _Call, started_at: datetime, *, stream: bool) -> dict[str, Any]:
        body = {
            "call_id": call.call_id,
            "caller_id": call.caller_id,
            "started_at": started_at.isoformat(),
            "metadata": {"source": "callsift demo", "recording": "stream" if stream else "upload"},
        }
        return dict(self.request("call_taker", "POST", "/v1/calls", json=body))

    def upload(self, call: _Call) -> dict[str, Any]:
        params = {} if call.caller_channel == "mix" else {"caller_channel": call.caller_channel}
        with call.audio.open("rb") as f:
            files = {"file": (call.audio.name, f, "application/octet-stream")}
            return dict(
                self.request(
                    "call_taker",
                    "POST",
                    f"/v1/calls/{call.call_id}/audio",
                    files=files,
                    params=params,
                )
            )

    def dispose(self, call: _Call) -> None:
        body = {"label": call.label, "note": "demo"}
        self.request("call_taker", "POST", f"/v1/calls/{call.call_id}/disposition", json=body)

    def close(self) -> None:
        self.http.close()


def _stream(api: _Api, call: _Call, pace: float, stats: ReplayStats) -> None:
    """The call's caller side over the live stream, ``pace`` times faster than real time."""
    from websockets.sync.client import connect

    from classifier.audio import load_audio

    audio = load_audio(call.audio, caller_channel=call.caller_channel)
    pcm = (np.clip(audio.caller, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    frames = [pcm[i : i + _STREAM_FRAME_BYTES] for i in range(0, len(pcm), _STREAM_FRAME_BYTES)]
    if len(frames) > 1 and len(frames[-1]) < 320:
        tail = frames.pop()
        frames[-1] = frames[-1][: _STREAM_FRAME_BYTES - len(tail)] + tail  # stays <= 100 ms
    url = api.base_url.replace("http", "ws", 1) + f"/v1/calls/{call.call_id}/stream?encoding=pcm16"
    try:
        with connect(url, additional_headers={"X-API-Key": api.keys["call_taker"]}) as ws:
            json.loads(ws.recv())  # ready
            for frame in frames:
                ws.send(frame)
                time.sleep(0.1 / pace)
            ws.send(json.dumps({"type": "end"}))
            while True:
                message = json.loads(ws.recv())
                if message.get("type") == "final":
                    break
        stats.add("streams")
        api.dispose(call)  # the call-taker's outcome once the call is over
        stats.add("dispositions")
    except Exception as exc:  # a stream is shown, not required: the replay goes on
        log.warning("live stream of %s failed: %s", call.call_id, exc)


def _review_some(
    api: _Api, labels: Mapping[str, Counter[str]], reviewed: set[str], stats: ReplayStats
) -> None:
    """A supervisor reviews the riskiest flagged number not reviewed yet, by its outcomes."""
    numbers = api.request("supervisor", "GET", "/v1/numbers/flagged", params={"limit": 100})[
        "numbers"
    ]
    waiting = [n for n in numbers if n["review"] is None and n["caller_id"] not in reviewed]
    if not waiting or len(waiting) < _REVIEWED_SHARE * len(numbers):
        return
    number = waiting[0]["caller_id"]
    seen = labels[number]
    if seen["prank"] >= max(2, seen["ghost"]):
        action = "confirm_prank"
    elif seen["ghost"] >= 2:
        action = "confirm_ghost"
    else:
        action = "clear"
    api.request(
        "supervisor",
        "POST",
        f"/v1/numbers/{number}/review",
        json={"action": action, "note": "demo review"},
    )
    reviewed.add(number)
    stats.add("reviews")


def replay(
    base_url: str,
    keys: Mapping[str, str],
    corpus_manifest: Path,
    speed: float,
    *,
    weeks: int = 3,
    stream_every: int = 150,
    review_every: int = 40,
    live_pause_s: float | None = None,
    on_ready: Callable[[ReplayStats], None] | None = None,
    stop: threading.Event | None = None,
) -> ReplayStats:
    """Replay the corpus through the service at ``speed`` times real time, then go live.

    Parameters
    ----------
    base_url : str
        The service, e.g. ``http://127.0.0.1:8000``.
    keys : mapping
        An API key for each of ``call_taker`` and ``supervisor``.
    corpus_manifest : Path
        A manifest written by ``callsift simulate`` (audio beside it).
    speed : float
        Seconds of the centre per second of replay; a slower service sets the pace.
    weeks : int, keyword-only
        Weeks the corpus is spread over, ending now.
    stream_every : int, keyword-only
        One call in this many is streamed live (at ``speed``, in the background)
        instead of posted as a recording.
    review_every : int, keyword-only
        A supervisor looks at the flagged numbers once every this many calls.
    live_pause_s : float or None, keyword-only
        After the replay, new calls (the corpus' again, with new ids) arrive at now,
        one every this many seconds, each third streamed at real time, until ``stop``
        is set. None: return after the replay.
    on_ready : callable or None, keyword-only
        Called once the replay is done, before the live calls.
    stop : threading.Event or None, keyword-only
        Set to end the live calls.

    Raises
    ------
    ReplayError
        The service refused a request.
    """
    if speed <= 0:
        raise ReplayError(f"speed is {speed}; expected more than 0")
    calls = load_corpus(corpus_manifest, weeks=weeks)
    stop = stop or threading.Event()
    api = _Api(base_url, keys)
    stats = ReplayStats()
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    reviewed: set[str] = set()
    streams: list[threading.Thread] = []
    t0_sim, t0_wall = calls[0].started_at, time.monotonic()

    def one(call: _Call, i: int, started_at: datetime, pace: float, stream: bool) -> None:
        answer = api.register(call, started_at, stream=stream)
        stats.add("calls")
        if stream:
            live = threading.Thread(target=_stream, args=(api, call, pace, stats), daemon=True)
            live.start()
            streams.append(live)
            return  # the stream stores the recording and its score; disposed after
        scored = api.upload(call)
        stats.add("recordings")
        if scored["flag"] != "none" or answer["flag"] != "none":
            stats.add("flagged_calls")
        if i % _UNLABELLED_EVERY != 0:
            api.dispose(call)
            stats.add("dispositions")
            labels[call.caller_id][call.label] += 1

    try:
        for i, call in enumerate(calls):
            due = t0_wall + (call.started_at - t0_sim).total_seconds() / speed
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            one(call, i, call.started_at, speed, i % stream_every == 5)
            if i % review_every == review_every - 1:
                _review_some(api, labels, reviewed, stats)
        for live in streams:
            live.join(timeout=120)
        stats.wall_s = time.monotonic() - t0_wall
        if on_ready is not None:
            on_ready(stats)
        if live_pause_s is None:
            return stats
        n = 0
        while not stop.wait(live_pause_s):
            src = calls[n % len(calls)]
            call = _Call(
                call_id=f"live-{n:06d}-{src.call_id}",
                caller_id=src.caller_id,
                started_at=datetime.now(UTC),
                duration_s=src.duration_s,
                audio=src.audio,
                caller_channel=src.caller_channel,
                label=src.label,
            )
            one(call, n, call.started_at, 1.0, n % 3 == 0)
            n += 1
            if n % 5 == 0:
                _review_some(api, labels, reviewed, stats)
        return stats
    finally:
        api.close()


def flagged_to_review(base_url: str, supervisor_key: str) -> int:
    """Flagged numbers no supervisor has reviewed yet (``GET /v1/numbers/flagged``)."""
    r = httpx.get(
        f"{base_url}/v1/numbers/flagged",
        params={"limit": 500},
        headers={"X-API-Key": supervisor_key},
        timeout=30.0,
    )
    r.raise_for_status()
    return sum(1 for n in r.json()["numbers"] if n["review"] is None)
