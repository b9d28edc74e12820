"""The service's commands: ``callsift keys ...``, ``callsift db ...`` (``upgrade``,
``retention``), ``callsift serve``, ``warm-up`` and ``report``.

:data:`app` holds them; the root command (``callsift.py`` at the top of the repository)
mounts them beside the training commands. Importing this module must stay
cheap (no SQLAlchemy, no FastAPI): every heavy import happens inside a command.
The database is the one named by ``DATABASE_URL`` (default ``sqlite:///runs/callsift.db``).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from classifier.errors import InvalidParameterError

if TYPE_CHECKING:
    from api.service import ModelHolder
    from api.settings import Settings
    from api.store import Store

#: Actor name of everything done from the command line, in the audit log.
CLI_ACTOR = "cli"

keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored only as hashes).",
    no_args_is_help=True,
)
db_app = typer.Typer(help="The service's database.", no_args_is_help=True)


def _store() -> Store:
    from api.settings import Settings
    from api.store import Store

    # The same settings as the service, so the CLI and the server share one database.
    settings = Settings()
    return Store(settings.database_url, data_dir=settings.data_dir)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(
        ..., "--role", help="One of call_taker, supervisor, data_scientist, admin."
    ),
    name: str | None = typer.Option(None, "--name", help="Who or what uses the key."),
    expires_days: int | None = typer.Option(
        None, "--expires-days", help="Days until the key stops working (default: never)."
    ),
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from api.security import check_role

    check_role(role)
    if expires_days is not None and expires_days < 1:
        raise InvalidParameterError(f"--expires-days must be 1 or more; got {expires_days}")
    expires_at = None if expires_days is None else datetime.now(UTC) + timedelta(days=expires_days)
    token, info = create_api_key(role, name or f"{role} key", expires_at=expires_at)
    expiry = "never" if expires_at is None else expires_at.isoformat(timespec="seconds")
    typer.echo(
        f"created key {info['id']} ({info['name']}, role {role}, expires {expiry}):", err=True
    )
    typer.echo(token)
    typer.echo("Store this key now: it cannot be shown again.", err=True)


def create_api_key(
    role: str, name: str, *, expires_at: datetime | None = None
) -> tuple[str, dict[str, Any]]:
    """A new key of ``role`` in the settings' database: (the token, shown once; its info).

    How an admin bootstraps: ``keys create`` and ``callsift demo --serve`` use it.
    """
    store = _store()
    try:
        store.upgrade()
        return store.create_key(role=role, name=name, actor=CLI_ACTOR, expires_at=expires_at)
    finally:
        store.dispose()


@keys_app.command("revoke")
def keys_revoke(key_id: int = typer.Argument(..., help="Id of the key (see `keys list`).")) -> None:
    """Revoke an API key at once."""
    store = _store()
    try:
        store.upgrade()
        store.revoke_key(key_id, actor=CLI_ACTOR)
    finally:
        store.dispose()
    typer.echo(f"revoked key {key_id}")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (id, role, name, state); never the keys themselves."""
    now = datetime.now(UTC)
    store = _store()
    try:
        store.upgrade()
        keys = store.list_keys()
    finally:
        store.dispose()
    for key in keys:
        if key["revoked_at"] is not None:
            state = "revoked"
        elif key["expires_at"] is not None and key["expires_at"] <= now:
            state = "expired"
        else:
            state = "active"
        typer.echo(f"{key['id']}\t{key['role']}\t{state}\t{key['prefix']}…\t{key['name']}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version (safe to repeat)."""
    store = _store()
    try:
        store.upgrade()
    finally:
        store.dispose()
    typer.echo("database is up to date")


@db_app.command("retention")
def db_retention(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be deleted or pseudonymised; change nothing."
    ),
) -> None:
    """Delete recordings and pseudonymise caller numbers older than the retention settings.

    CALLSIFT_RETENTION_DAYS: recordings of calls that started more than this many days
    ago are deleted. CALLSIFT_NUMBER_RETENTION_DAYS: their numbers (and reviews') become
    keyed pseudonyms (CALLSIFT_PSEUDONYM_KEY). Calls inside the window are never
    touched; each batch is audited. Run it daily (cron, a systemd timer).
    """
    from api.retention import apply_retention, pseudonym_key
    from api.settings import Settings

    settings = Settings()
    key = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    pseudonym_key(settings.number_retention_days, key)  # refused before touching anything
    store = _store()
    try:
        store.upgrade()
        report = apply_retention(
            store,
            now=datetime.now(UTC),
            recordings_days=settings.retention_days,
            numbers_days=settings.number_retention_days,
            key=key,
            dry_run=dry_run,
            actor=CLI_ACTOR,
        )
    finally:
        store.dispose()
    for line in report.lines():
        typer.echo(line)
    if report.problems:
        raise typer.Exit(1)


# --- `callsift serve` --------------------------------------------------------------------


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    loop: str = typer.Option(
        "auto", "--loop", help="Event loop: auto (uvloop when installed), asyncio or uvloop."
    ),
    http: str = typer.Option(
        "auto", "--http", help="HTTP parser: auto (httptools when installed), h11 or httptools."
    ),
) -> None:
    """Run the scoring service (settings from CALLSIFT_* variables, DATABASE_URL and .env).

    Open http://HOST:PORT/docs for the API documentation.
    """
    from api.settings import Settings

    for name, value, choices in (
        ("--loop", loop, ("auto", "asyncio", "uvloop")),
        ("--http", http, ("auto", "h11", "httptools")),
    ):
        if value not in choices:
            raise typer.BadParameter(
                f"{value!r}; expected one of {', '.join(choices)}", param_hint=name
            )
    settings = Settings()  # fail here, with a clear message, on a bad setting
    if settings.instance is None:
        # The workers share this name, and with it one limit of live streams; the port
        # tells apart two servers on one host.
        os.environ["CALLSIFT_INSTANCE"] = f"{socket.gethostname()[:190]}:{port}"
    config = server_config(settings, host=host, port=port, workers=workers, loop=loop, http=http)
    # Bound first: a port in use is said at once, not after the model has loaded.
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn has logged the cause (address in use, ...)
        typer.echo(f"error: cannot listen on {host}:{port}", err=True)
        raise typer.Exit(3) from None
    with sock:
        _serve(config, sock, settings, host=host, port=port, workers=workers)


def load_model_or_exit(settings: Settings) -> ModelHolder:
    """The settings' model, loaded; a model that cannot be loaded stops the command (exit 3)
    with the reason."""
    from api.service import ModelHolder

    models = ModelHolder(
        model_dir=settings.model_dir,
        registry_ref=settings.model_registry_ref,
        tracking_uri=settings.mlflow_tracking_uri,
    )
    if not models.load():
        typer.echo(f"error: model unavailable: {models.error}", err=True)
        raise typer.Exit(3)
    return models


def server_config(
    settings: Any, *, host: str, port: int, workers: int, loop: str = "auto", http: str = "auto"
) -> Any:
    """The uvicorn config of ``callsift serve`` (an ``api.slow_clients.ServerConfig``)."""
    from api.slow_clients import ServerConfig, protocol_path

    return ServerConfig(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop=loop,
        # uvicorn's protocols with a deadline for a request's line and headers: a
        # client sending them slowly or never is closed, not kept (api/slow_clients.py).
        http=protocol_path(http),
        head_timeout_s=settings.http_head_timeout_s,
        timeout_keep_alive=settings.http_keep_alive_s,
        log_level=settings.log_level.lower(),
        # uvicorn's access log prints raw paths, which hold phone numbers; the app logs
        # every request itself with the route template instead.
        access_log=False,
        # Live audio frames do not compress; deflating them costs CPU for nothing.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.stream_ping_interval_s,
        ws_ping_timeout=settings.stream_ping_timeout_s,
    )


def _serve(config: Any, sock: socket.socket, settings: Any, **where: Any) -> None:
    from api.store import StoreUnavailableError
    from api.supervisor import Supervisor

    token: str | None = None
    try:
        token = _bootstrap_admin(settings)
    except StoreUnavailableError as exc:
        # The service starts anyway and scores in degraded mode; /readyz says why.
        typer.echo(f"warning: {exc}; no admin key could be checked or created", err=True)
    # The model is loaded and every compiled kernel warmed up here, once, before any
    # worker starts: a model that cannot be read stops the server with the reason
    # instead of failing in every worker, and the workers load numba's finished cache
    # instead of compiling against their supervisor's health check.
    models = load_model_or_exit(settings)
    url = f"http://{where['host']}:{where['port']}"
    typer.echo(
        f"callsift serving on {url} (API docs at {url}/docs); "
        f"database {_safe_url(settings.database_url)}",
        err=True,
    )
    if token:
        typer.echo(
            "No API key existed, so one admin key was created. It is shown only now:\n"
            f"    {token}\n"
            "Send it as the X-API-Key header. Create keys per person and role with\n"
            "    callsift keys create --role call_taker|supervisor|data_scientist|admin",
            err=True,
        )
    if where["workers"] == 1:
        import uvicorn

        from api.main import create_app

        # Settings read anew: CALLSIFT_INSTANCE may have been set above.
        config.app, config.factory = create_app(models=models), False
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
        if not server.started:
            raise typer.Exit(3)
        return
    del models  # each worker loads its own; the parent only supervises
    supervisor = Supervisor(config, [sock], startup_timeout_s=settings.worker_start_timeout_s)
    supervisor.run()
    if supervisor.failure:
        typer.echo(f"error: {supervisor.failure}", err=True)
        raise typer.Exit(3)


def warm_up_command() -> None:
    """Compile and cache every compiled step of the features and the shipped model.

    Run once after installing (``make`` does); ``callsift serve`` does it too before
    it starts workers, so a first start after install then loads instead of compiling.
    """
    from api.service import load_scoring_model

    load_scoring_model()  # loads the default model and warms it up end to end
    typer.echo("compiled kernels cached", err=True)


def _bootstrap_admin(settings: Any) -> str | None:
    """An admin key when the database holds no usable key (a fresh install), else None."""
    from api.store import Store

    store = Store(settings.database_url, data_dir=settings.data_dir)
    try:
        store.upgrade()
        now = datetime.now(UTC)
        usable = [
            k
            for k in store.list_keys()
            if k["revoked_at"] is None and (k["expires_at"] is None or k["expires_at"] > now)
        ]
        if usable:
            return None
        token, _ = store.create_key(role="admin", name="bootstrap-admin", actor="cli")
        return token
    finally:
        store.dispose()


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # only for display
        return "(unparsable DATABASE_URL)"


def report_command(
    week: str = typer.Option(..., "--week", help="ISO week, YYYY-Www (e.g. 2026-W49)."),
    out: str = typer.Option(..., "--out", help="Where to write the HTML page."),
    lang: str = typer.Option("en", "--lang", help="Page language: en or id."),
    full_numbers: bool = typer.Option(
        False, "--full-numbers", help="Show callers' numbers in full (default: masked)."
    ),
) -> None:
    """Write the weekly report for management (one printable HTML page) to --out.

    Reads the service's database (the same Settings); days and hours are in
    CALLSIFT_TIMEZONE, else UTC.
    """
    from pathlib import Path

    from api.reports import weekly_report_html
    from api.settings import Settings
    from classifier.history import resolve_timezone

    settings = Settings()
    store = _store()
    try:
        page = weekly_report_html(
            store,
            week=week,
            tz=resolve_timezone(settings.timezone),
            lang=lang,
            unmask=full_numbers,
        )
    finally:
        store.dispose()
    Path(out).write_text(page, encoding="utf-8")
    typer.echo(f"wrote the report of {week.strip()} to {out}", err=True)


app = typer.Typer(
    name="service",
    help="Run the scoring service and look after its database, keys and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve_command)
app.command("warm-up")(warm_up_command)
app.command("report")(report_command)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
