"""``callsift demo --serve``: the service on embedded defaults, fed a simulated centre.

It starts the service (SQLite and recordings in one demo folder, the shipped model),
creates one API key per role the way an admin bootstraps (:func:`api.cli.create_api_key`),
and replays a simulated Kendari-like centre through the public HTTP API
(:func:`training.replay.replay`), then keeps new calls coming at a live pace. Nothing
else is written to the database: the demo is also an end-to-end check.

Refused before anything is written: a port in use, and a folder that already holds a
demo (``--reset`` starts over; a folder this command did not make is never deleted).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import typer

ROLES = ("call_taker", "supervisor", "data_scientist", "admin")
DB_NAME = "callsift.db"
MARKER = ".callsift-demo-serve"


def _check_folder(folder: Path, *, reset: bool) -> None:
    """Refuse a folder holding a demo (unless ``reset``) or anything else."""
    if not folder.exists():
        return
    if not folder.is_dir():
        typer.echo(f"error: demo folder {folder} exists and is not a folder", err=True)
        raise typer.Exit(2)
    if not any(folder.iterdir()):
        return
    if not (folder / MARKER).exists():
        typer.echo(
            f"error: {folder} is not empty and was not made by `callsift demo --serve`; "
            "choose another --out (nothing was changed)",
            err=True,
        )
        raise typer.Exit(2)
    if not reset:
        typer.echo(
            f"error: demo folder {folder} already holds a demo database ({folder / DB_NAME}); "
            "pass --reset to start over, or another --out (nothing was changed)",
            err=True,
        )
        raise typer.Exit(2)


def serve_demo(
    folder: Path,
    *,
    host: str,
    port: int,
    calls: int,
    seed: int,
    speed: float,
    live_pause_s: float,
    reset: bool,
) -> None:
    """Start the service and replay a simulated centre through it until interrupted."""
    from api.cli import create_api_key, server_config
    from api.settings import Settings

    _check_folder(folder, reset=reset)
    # Embedded defaults, all inside the demo folder; nothing of the caller's database.
    os.environ["CALLSIFT_DATABASE_URL"] = f"sqlite:///{(folder / DB_NAME).resolve()}"
    os.environ["CALLSIFT_DATA_DIR"] = str((folder / "data").resolve())
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("CALLSIFT_INSTANCE", f"{socket.gethostname()[:190]}:{port}")
    # The replay's streams run on the demo's clock, faster than real time.
    os.environ.setdefault("CALLSIFT_STREAM_MAX_AHEAD_S", "1000000")
    # The demo's own lines, not a log line per request (CALLSIFT_LOG_LEVEL=INFO shows them).
    os.environ.setdefault("CALLSIFT_LOG_LEVEL", "WARNING")
    os.environ.setdefault("CALLSIFT_LOOP_STALL_MS", "0")  # the replay's load would fill the screen
    settings = Settings()
    config = server_config(settings, host=host, port=port, workers=1)
    try:
        sock = config.bind_socket()  # a port in use is said before anything is written
    except SystemExit:
        typer.echo(f"error: cannot listen on {host}:{port} (nothing was changed)", err=True)
        raise typer.Exit(3) from None
    with sock:
        if reset and folder.exists():
            shutil.rmtree(folder)  # only a folder with the marker (checked above)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER).write_text("made by callsift demo --serve; safe to delete\n")
        _run(folder, config, sock, settings, calls, seed, speed, live_pause_s, create_api_key)


def _run(
    folder: Path,
    config: Any,
    sock: socket.socket,
    settings: Any,
    calls: int,
    seed: int,
    speed: float,
    live_pause_s: float,
    create_api_key: Any,
) -> None:
    import uvicorn

    from api.cli import load_model_or_exit
    from api.main import create_app
    from training.replay import ReplayStats, flagged_to_review, replay
    from training.simulate import simulate_corpus

    # The corpus is a pure function of (preset, calls, seed): simulated once, kept beside
    # the demo folder (not in it, so --reset keeps it) and reused by the next demo.
    corpus = folder.parent / f".{folder.name}-corpus-kendari-2025-{calls}-{seed}"
    manifest = corpus / "manifest.csv"
    if not manifest.exists():
        typer.echo(f"simulating {calls} calls into {corpus} (once)...", err=True)
        shutil.rmtree(corpus, ignore_errors=True)  # a run cut short leaves no manifest
        simulate_corpus(corpus, preset="kendari-2025", n_calls=calls, seed=seed, progress=False)
    keys = {role: create_api_key(role, f"demo {role}")[0] for role in ROLES}
    models = load_model_or_exit(settings)
    config.app, config.factory = create_app(models=models), False
    server = uvicorn.Server(config)
    url = f"http://{config.host}:{config.port}"
    stop = threading.Event()
    failure: list[str] = []

    def ready(stats: ReplayStats) -> None:
        to_review = flagged_to_review(url, keys["supervisor"])
        typer.echo(
            f"demo ready in {stats.wall_s:.0f} s: {stats.calls} calls, {stats.recordings} "
            f"recordings, {stats.streams} live streams, {stats.dispositions} dispositions, "
            f"{stats.reviews} reviews; {to_review} flagged numbers to review. "
            f"New calls now arrive every {live_pause_s:g} s (Ctrl-C stops).",
            err=True,
        )

    def feed() -> None:
        while not server.started:
            if server.should_exit or stop.wait(0.1):
                return
        try:
            replay(
                url,
                keys,
                manifest,
                speed,
                live_pause_s=live_pause_s,
                on_ready=ready,
                stop=stop,
            )
        except Exception as exc:  # said, and the server stopped: the check failed
            failure.append(str(exc))
            server.should_exit = True

    typer.echo(f"callsift demo: console at {url}/console/ (API docs at {url}/docs)", err=True)
    typer.echo(f"database {folder / DB_NAME}, recordings {folder / 'data'}", err=True)
    typer.echo("API keys, one per role (shown only now):", err=True)
    for role, token in keys.items():
        typer.echo(f"    {role:<15} {token}", err=True)
    typer.echo(
        f"replaying 3 weeks of a Kendari-like centre ({calls} simulated calls) at {speed:g}x...",
        err=True,
    )
    feeder = threading.Thread(target=feed, name="demo-replay", daemon=True)
    feeder.start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        feeder.join(timeout=10)
    if failure:
        typer.echo(f"error: the replay failed: {failure[0]}", err=True)
        raise typer.Exit(1)
