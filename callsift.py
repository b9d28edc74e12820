"""The ``callsift`` command: the training and the service commands under one root.

This is the one module that imports both layers. :mod:`training.cli` and :mod:`api.cli`
each hold their own commands and import neither each other nor this module, and nothing
imports this module (the import-linter contracts in pyproject.toml check both).

``callsift demo --serve`` is here for the same reason: it starts the service on embedded
defaults (SQLite and recordings in one demo folder, the shipped model), creates one API
key per role the way an admin bootstraps (:func:`api.cli.create_api_key`), and replays a
simulated Kendari-like centre through the public HTTP API (:func:`training.replay.replay`),
then keeps new calls coming at a live pace. Nothing else is written to the database: the
demo is also an end-to-end check. Refused before anything is written: a port in use, and
a folder that already holds a demo (``--reset`` starts over; a folder this command did
not make is never deleted). Without ``--serve`` it is :func:`training.demo.demo`.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from api import cli as api_cli
from classifier.errors import CallsiftError
from training import cli as training_cli
from training import demo as training_demo

# --- `callsift demo` -----------------------------------------------------------------------

ROLES = ("call_taker", "supervisor", "data_scientist", "admin")
DB_NAME = "callsift.db"
MARKER = ".callsift-demo-serve"
#: ``--serve``: simulated calls (spread over three weeks) and the replay's speed (three
#: weeks of the centre in about 90 s; a slower service sets the pace).
SERVE_CALLS = 1000
SERVE_SPEED = 20000.0


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
    config = api_cli.server_config(settings, host=host, port=port, workers=1)
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
        _run(folder, config, sock, settings, calls, seed, speed, live_pause_s)


def _run(
    folder: Path,
    config: Any,
    sock: socket.socket,
    settings: Any,
    calls: int,
    seed: int,
    speed: float,
    live_pause_s: float,
) -> None:
    import uvicorn

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
    keys = {role: api_cli.create_api_key(role, f"demo {role}")[0] for role in ROLES}
    models = api_cli.load_model_or_exit(settings)
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


def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="folder for the demo (default runs/demo, with --serve runs/demo-serve)"
        ),
    ] = None,
    calls: Annotated[
        int | None,
        typer.Option("--calls", help=f"number of calls (default 120, with --serve {SERVE_CALLS})"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="start the service and replay three weeks of a simulated centre through its API",
        ),
    ] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="--serve: TCP port")] = 8000,
    host: Annotated[str, typer.Option("--host", help="--serve: interface")] = "127.0.0.1",
    speed: Annotated[
        float,
        typer.Option("--speed", min=1.0, help="--serve: seconds of the centre per second"),
    ] = SERVE_SPEED,
    live_pause: Annotated[
        float,
        typer.Option("--live-pause", min=0.1, help="--serve: seconds between live calls after"),
    ] = 8.0,
    reset: Annotated[
        bool, typer.Option("--reset", help="--serve: delete an earlier demo and start over")
    ] = False,
) -> None:
    """Simulate a small Kendari-like corpus and score it with the default model.

    With --serve: start the service on embedded defaults (SQLite in the demo folder, the
    shipped model), print the console's address and one API key per role, and replay
    three weeks of a simulated Kendari-like centre through the API, then new calls at a
    live pace until Ctrl-C.
    """
    if not serve:
        training_demo.demo(out=out, calls=calls, seed=seed)
        return
    serve_demo(
        out or Path("runs/demo-serve"),
        host=host,
        port=port,
        calls=SERVE_CALLS if calls is None else calls,
        seed=seed,
        speed=speed,
        live_pause_s=live_pause,
        reset=reset,
    )


# --- the root command ----------------------------------------------------------------------

app = typer.Typer(
    name="callsift",
    help=(
        "callsift screens calls to emergency numbers for prank and ghost calls. "
        "It only advises: it never drops, blocks or deprioritises a call."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Each layer's commands, then the demo between them, then their groups: the order
# `callsift --help` has always listed them in.
app.registered_commands += training_cli.app.registered_commands
app.command("demo")(demo)
app.registered_commands += api_cli.app.registered_commands
app.registered_groups += training_cli.app.registered_groups + api_cli.app.registered_groups


def main() -> None:
    """Run the CLI, turning callsift errors into one clear line and exit code 2."""
    try:
        app()
    except CallsiftError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
