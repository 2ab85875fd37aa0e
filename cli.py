"""The `dealflow` command: up, worker, api, migrate, keys, seed, enrichment; definitions in cli_definitions,
events (the outbox) in cli_events, documents (verify a signed PDF) in cli_documents, users in cli_users, scoring
(train, rescore, intent-train) in cli_scoring."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import signal
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from cli_common import CliError, console, err, load_settings, migrate_database
from cli_definitions import definitions_app
from cli_documents import documents_app
from cli_events import events_app
import cli_retraining  # noqa: F401 — registers `dealflow scoring retrain | models | rollback | schedule`
from cli_scoring import scoring_app
from cli_status import status_command
from cli_users import users_app
from core.settings import Settings
from models.tenant import Role

app = typer.Typer(help="Dealflow: durable lead and deal workflows for real-estate investors.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
enrichment_app = typer.Typer(help="Enrichment data (county records).", no_args_is_help=True)
app.add_typer(enrichment_app, name="enrichment")
app.add_typer(scoring_app, name="scoring")
app.add_typer(definitions_app, name="definitions")
app.add_typer(events_app, name="events")
app.add_typer(documents_app, name="documents")
app.add_typer(users_app, name="users")
app.command("status")(status_command)


@app.command("migrate")
def migrate_command() -> None:
    """Apply database migrations (Alembic) to DEALFLOW_DATABASE_URL or the embedded SQLite file."""
    settings = load_settings()
    with console.status("Migrating the CRM database"):
        migrate_database(settings)
    console.print(f"[green]✓[/] database at head: {_safe_url(settings.effective_database_url)}")


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug; created if new (with --user: the "
                                                            "user's tenant, needed when the email is in several)"),
    role: Role = typer.Option(None, "--role", "-r", help="admin, manager, staff, ops or readonly (default: staff; "
                                                          "with --user, the user's role, or a narrower one)"),
    user: str = typer.Option(None, "--user", "-u", help="the key belongs to this user (email or id): it acts as "
                                                        "them, audit rows name them"),
    name: str = typer.Option("", "--name", "-n", help="what the key is for"),
    key_file: Path = typer.Option(None, "--key-file", dir_okay=False,
                                  help="write the key here (0600) instead of showing it; off a terminal the "
                                       "default is <home>/keys/<key id>.key"),
) -> None:
    """Create an API key. On a terminal the key is printed once, as the last word of the output; otherwise (a
    script, a log, CI) it is written to a file only its owner can read, and the file's path is the last word."""
    from api.security import create_api_key
    from core.db import make_engine
    from core.state import write_private

    if tenant is None and user is None:
        raise CliError("give --tenant (a tenant-level key) or --user (a key of that user)")
    if tenant is not None and (not tenant.replace("-", "").replace("_", "").isalnum() or len(tenant) > 40):
        raise CliError(f"tenant {tenant!r} must be letters, digits, '-' or '_' (at most 40)")
    settings = load_settings()
    migrate_database(settings)
    engine = make_engine(settings.effective_database_url)
    owner = None
    try:
        if user is not None:
            from sqlmodel import Session

            from cli_users import find_user_once

            with Session(engine) as session:
                owner = find_user_once(session, tenant, user)
            tenant, role = owner.tenant_id, role or Role(owner.role)
        role = role or Role.staff
        try:
            row, key = create_api_key(engine, tenant, role, name, user_id=owner.id if owner else None)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    whose = f"{owner.email} ({tenant})" if owner else f"tenant {tenant}"
    if key_file is None and console.is_terminal:
        console.print(f"Created {role.value} key {row.id} for {whose}. It is shown once:", highlight=False)
        print(key)
        return
    path = key_file or settings.home / "keys" / f"{row.id}.key"
    try:
        write_private(path, key + "\n")
    except OSError as exc:
        raise CliError(f"cannot write the key to {path}: {exc.strerror} (key {row.id} was created: revoke it "
                       f"with `dealflow keys revoke {row.id}`)") from None
    console.print(f"Created {role.value} key {row.id} for {whose}, written (readable by you only) to:",
                  highlight=False)
    print(path)


@keys_app.command("list")
def keys_list(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant slug"),
) -> None:
    """The tenant's keys (never the secret): id, prefix, name, role, created, last used, revoked."""
    from rich.table import Table
    from sqlmodel import Session

    from api.security import list_api_keys
    from core.db import make_engine

    settings = load_settings()
    migrate_database(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            rows = list_api_keys(session, tenant)
    finally:
        engine.dispose()
    if not rows:
        raise CliError(f"tenant {tenant!r} has no keys")
    table = Table("id", "prefix", "name", "role", "user", "created", "last used", "revoked", box=None,
                  pad_edge=False)

    def when(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"

    for row in rows:
        table.add_row(row.id, row.prefix, row.name or "-", row.role, row.user_id or "-", when(row.created_at),
                      when(row.last_used_at), when(row.revoked_at))
    console.print(table, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(..., help="the key's id (ak_...) or prefix (dfk_<prefix>_...)"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="only a key of this tenant"),
) -> None:
    """Revoke a key: refused from the next request on, by every API process. Audited."""
    from sqlmodel import Session

    from api.security import find_api_key, revoke_api_key
    from core.db import make_engine

    settings = load_settings()
    migrate_database(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            row = find_api_key(session, tenant, key.removeprefix("dfk_").split("_")[0] if key.startswith("dfk_")
                               else key)
            if row is None:
                raise CliError(f"no key {key!r}" + (f" in tenant {tenant!r}" if tenant else ""))
            already = row.revoked_at is not None
            revoke_api_key(session, row, "cli")
    finally:
        engine.dispose()
    console.print(f"key {row.id} ({row.prefix}, tenant {row.tenant_id}) " +
                  ("was already revoked" if already else "revoked"), highlight=False)


@enrichment_app.command("import")
def enrichment_import(
    csv_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="parcel / county-records CSV"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
) -> None:
    """Import a county-records CSV (one row per parcel, matched to leads by standardised address)."""
    import csv as _csv

    from core.db import make_engine
    from providers.enrichment import import_parcels

    settings = load_settings()
    migrate_database(settings)
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        total = max(sum(1 for _ in _csv.reader(handle)) - 1, 0)
    engine = make_engine(settings.effective_database_url)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console) as progress:
            task = progress.add_task(f"Importing {csv_path.name}", total=total)
            try:
                counts = import_parcels(engine, tenant or settings.default_tenant, csv_path,
                                        progress=lambda: progress.advance(task))
            except ValueError as exc:
                raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    for line in counts["errors"][:20]:
        err.print(f"[yellow]skipped[/] {line}", highlight=False, soft_wrap=True)
    console.print(f"[green]✓[/] {counts['created']} parcels added, {counts['updated']} updated, "
                  f"{len(counts['errors'])} rows skipped")


@app.command("worker")
def worker_command() -> None:
    """Run the Temporal worker alone (production; same as `python worker.py`)."""
    import worker

    _check_secret_key(load_settings())  # configuration errors are one line, before anything connects
    worker.main()


def _check_secret_key(settings: Settings) -> None:
    from core.settings import ConfigError

    try:
        settings.check_secret_key()
    except ConfigError as exc:
        raise CliError(str(exc)) from None


@app.command("api")
def api_command(
    host: str = typer.Option(None, help="bind address (default DEALFLOW_API_HOST)"),
    port: int = typer.Option(None, help="port (default DEALFLOW_API_PORT)"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
    fd: int = typer.Option(None, hidden=True, help="serve on this inherited listening socket (dealflow up)"),
    ready_file: Path = typer.Option(None, hidden=True, help="touched once the API serves (dealflow up)"),
) -> None:
    """Run the API alone (production)."""
    import uvicorn

    from core.logging import configure_logging
    from core.tracing import configure_tracing

    settings = load_settings()
    _check_secret_key(settings)
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing(settings, "dealflow-api")
    if fd is None:
        # This process serves the metrics (with --workers > 1 set PROMETHEUS_MULTIPROC_DIR so it adds theirs up).
        _serve_metrics(settings)
        uvicorn.run("api.app:create_app", factory=True, host=host or settings.api_host,
                    port=port or settings.api_port, workers=workers, log_config=None, proxy_headers=True,
                    forwarded_allow_ips=settings.forwarded_allow_ips, timeout_graceful_shutdown=GRACEFUL_SECONDS)
        return

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if ready_file and not self.should_exit:
                ready_file.touch()

    # One of `dealflow up`'s API processes: the socket is the parent's, shared by all of them (the kernel hands
    # each connection to one); its family and type are read from the descriptor.
    config = uvicorn.Config("api.app:create_app", factory=True, log_config=None, proxy_headers=True,
                            forwarded_allow_ips=settings.forwarded_allow_ips, log_level="warning",
                            timeout_keep_alive=75, timeout_graceful_shutdown=GRACEFUL_SECONDS)
    Server(config).run(sockets=[socket.socket(fileno=fd)])


GRACEFUL_SECONDS = 10  # a stopping API waits this long for requests in flight (the console's live streams end then)


def _serve_metrics(settings: Settings, multiprocess_dir: Path | None = None):
    """Dealflow's metrics and the relay's backlog on DEALFLOW_METRICS_ADDRESS (unless empty), from a thread."""
    if not settings.metrics_address:
        return None
    from api.routes.health import read_backlog
    from core.db import make_engine
    from core.metrics import serve

    engine = make_engine(settings.effective_database_url)
    try:
        return serve(settings.metrics_address, backlog=lambda: read_backlog(engine), multiprocess_dir=multiprocess_dir)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {settings.metrics_address}: {exc.strerror} "
                       "(set DEALFLOW_METRICS_ADDRESS, or empty to turn them off)") from None


@app.command("seed")
def seed_command(
    tenant: str = typer.Option(None, "--tenant", "-t", help="tenant slug (default DEALFLOW_DEFAULT_TENANT)"),
    leads: int = typer.Option(40, help="how many demo leads"),
) -> None:
    """Seed a demo book (leads through the real intake, investors, deals). The worker's relay starts their
    workflows (now, or when it next runs)."""
    settings = load_settings()
    migrate_database(settings)
    asyncio.run(_seed(settings, tenant or settings.default_tenant, leads))


async def _seed(settings: Settings, tenant: str, leads: int, display=None) -> None:
    """With `display` (dealflow up's start display), the progress is its `demo` line, not a bar of its own."""
    from sqlmodel import Session

    from api.demo_book import seed_demo_book
    from api.security import create_api_key
    from core.db import make_engine
    from models.tenant import Tenant

    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            if session.get(Tenant, tenant) is None:
                create_api_key(engine, tenant, Role.admin, "created by seed")
        with contextlib.ExitStack() as stack:
            if display is None:
                progress = stack.enter_context(Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                                        MofNCompleteColumn(), console=console, transient=True))
                task = progress.add_task("Seeding demo leads", total=leads)
                advance = lambda: progress.advance(task)  # noqa: E731
            else:
                done = [0]

                def advance() -> None:
                    done[0] += 1
                    if done[0] % 5 == 0 or done[0] == leads:  # a line each time off a terminal: every fifth
                        display.set("demo", "starting", f"seeding the demo book: {done[0]}/{leads} leads")
            with Session(engine, expire_on_commit=False) as session:
                counts = await asyncio.to_thread(seed_demo_book, session, tenant, leads, progress=advance)
    finally:
        engine.dispose()
    summary = (f"demo book for {tenant}: {counts['leads']} new leads, {counts['investors']} investors, "
               f"{counts['opportunities']} opportunities")
    if display is None:
        console.print(f"[green]✓[/] {summary}")
    else:
        display.set("demo", "ready", summary)


def _dev_key(settings: Settings) -> str:
    """The embedded setup's admin key for the default tenant, kept in .dealflow/dev-admin-key."""
    from sqlmodel import Session

    from api.security import authenticate, create_api_key
    from core.db import make_engine
    from core.state import write_private

    path = settings.home / "dev-admin-key"
    engine = make_engine(settings.effective_database_url)
    try:
        if path.exists():
            key = path.read_text().strip()
            with Session(engine) as session:
                principal = authenticate(session, key)
            if principal and principal.tenant_id == settings.default_tenant and principal.role == Role.admin:
                return key
        _, key = create_api_key(engine, settings.default_tenant, Role.admin, "dev admin (dealflow up)")
    finally:
        engine.dispose()
    write_private(path, key + "\n")
    return key


DEV_CONSOLE_EMAIL = "admin@{tenant}.example.com"  # (example.com: reserved for examples, never mailed)


def _dev_console_user(settings: Settings) -> str:
    """The embedded setup's console sign-in: an admin user of the default tenant whose password is kept in
    .dealflow/dev-console-password (mode 600, made on first run; a missing file gets a new password)."""
    import secrets

    from sqlmodel import Session

    from core.db import make_engine
    from core.state import write_private
    from services.acting import Caller
    from services.users import create_user, find_user, update_user

    email = DEV_CONSOLE_EMAIL.format(tenant=settings.default_tenant)
    path = settings.home / "dev-console-password"
    engine = make_engine(settings.effective_database_url)
    try:
        with Session(engine) as session:
            user = find_user(session, settings.default_tenant, email)
            if user is not None and path.exists():
                return email
            password = secrets.token_urlsafe(12)
            if user is None:
                create_user(session, settings.default_tenant, email=email, name="Dev Admin", role=Role.admin.value,
                            password=password, actor="cli:up")
            else:
                update_user(session, Caller(tenant_id=settings.default_tenant, actor="cli:up"), user,
                            {"password": password})
    finally:
        engine.dispose()
    write_private(path, password + "\n")
    return email


@app.command("up")
def up_command(
    demo: bool = typer.Option(False, "--demo", help="also seed a demo book (leads, investors, deals)"),
    host: str = typer.Option(None, help="API bind address"),
    port: int = typer.Option(None, help="API port"),
) -> None:
    """Run everything: Temporal dev server (unless DEALFLOW_TEMPORAL_ADDRESS), database, worker, API."""
    settings = load_settings()
    if host:
        settings.api_host = host
    if port:
        settings.api_port = port
    asyncio.run(_up(settings, demo))


async def _up(settings: Settings, demo: bool) -> None:
    from core.devserver import DevServer, DevServerError, port_in_use
    from core.logging import configure_logging
    from cli_startup import StartupDisplay, banner
    from cli_status import STATE_FILE, write_up_state
    from core.state import private_folder, secret_key_in
    from core.supervisor import Supervisor, die_with_parent

    configure_logging(settings.log_level, settings.log_format)
    # Everything the embedded setup and its children create under home is theirs alone: files 0600, folders 0700
    # (the databases, their WAL files, logs, models, the keys).
    os.umask(0o077)
    private_folder(settings.home)
    if settings.secret_key:
        _check_secret_key(settings)  # one set by hand must be a proper one
    else:  # made once and kept in home, handed to the children
        settings.secret_key = secret_key_in(settings.home)
    api_host = settings.api_host if settings.api_host != "0.0.0.0" else "127.0.0.1"
    if port_in_use(settings.api_port, api_host):
        raise CliError(f"port {settings.api_port} is already in use (set DEALFLOW_API_PORT or --port)")

    devserver = supervisor = listener = metrics_server = None
    ui = f"http://127.0.0.1:{settings.embedded_temporal_ui_port}"
    display = StartupDisplay(console)
    try:
        with display:
            display.set("database", "starting", "migrating " + _safe_url(settings.effective_database_url))
            migration = asyncio.create_task(asyncio.to_thread(migrate_database, settings))
            if settings.temporal_address:
                display.set("temporal", "ready", f"external, {settings.effective_temporal_address}")
            else:
                devserver = DevServer(settings.home / "temporal.db", settings.embedded_temporal_port,
                                      settings.embedded_temporal_ui_port, settings.home / "temporal.log",
                                      preexec_fn=die_with_parent)
                display.set("temporal", "starting", f"dev server on {devserver.address}")
                try:
                    # From the main thread (the child dies with this process, even on SIGKILL), while the
                    # migration runs on its own.
                    devserver.start()
                except DevServerError as exc:
                    raise CliError(str(exc)) from None
                display.set("temporal", "ready", f"{devserver.address}, UI {ui}")
            await migration
            display.set("database", "ready", _safe_url(settings.effective_database_url))
            key = await asyncio.to_thread(_dev_key, settings)
            console_email = await asyncio.to_thread(_dev_console_user, settings)
            if demo:  # through the real intake; the worker's relay starts their workflows once it runs
                display.set("demo", "starting", "seeding the demo book")
                await _seed(settings, settings.default_tenant, 40, display)

            # The API's socket is bound here, once: every API process serves on it, and one that restarts
            # takes up where it left without the port ever being free for someone else.
            try:
                listener = socket.create_server((settings.api_host, settings.api_port), backlog=2048)
            except OSError as exc:
                raise CliError(f"cannot listen on {settings.api_host}:{settings.api_port}: {exc.strerror}") from None
            children = _children(settings, listener)
            # One scrape for all of them: this process adds up what the API processes and the worker write.
            metrics_server = _serve_metrics(settings, multiprocess_dir=settings.home / "metrics")
            starting = True

            def on_change(child, note: str) -> None:
                if starting:
                    display.set(child.name, child.state, note or (f"pid {child.process.pid}" if child.process
                                                                   else ""))
                else:
                    _announce(child, note)
                write_up_state(settings, children, ui if devserver else None)

            supervisor = Supervisor(children, on_change)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            supervisor.start_all()
            while not stop.is_set() and not all(c.state == "ready" for c in supervisor.children):
                supervisor.check()
                await asyncio.sleep(0.1)
        starting = False
        if not stop.is_set():
            banner(console, api=settings.effective_public_url, ui=ui if devserver else None,
                   external_temporal=settings.effective_temporal_address,
                   database=_safe_url(settings.effective_database_url), tenant=settings.default_tenant,
                   namespace=settings.temporal_namespace, key=key, key_file=settings.home / "dev-admin-key",
                   console_email=console_email, console_password_file=settings.home / "dev-console-password",
                   metrics=settings.metrics_address, temporal_metrics=settings.temporal_metrics_address)
            await supervisor.watch(stop)
    finally:
        if supervisor:
            with console.status("Stopping the API and the worker"):
                supervisor.stop_all()
        if listener:
            listener.close()
        if metrics_server:
            metrics_server.shutdown()
            metrics_server.server_close()
        if devserver:
            with console.status("Stopping the Temporal dev server"):
                devserver.stop()
        (settings.home / STATE_FILE).unlink(missing_ok=True)  # last: stopping the children rewrote it
    console.print("[green]✓[/] stopped")


def _children(settings: Settings, listener):
    """The worker (with the event relay) and the API processes (serving on `listener`, the socket `dealflow up`
    bound), each a process of its own with the embedded settings."""
    from core.supervisor import Child

    # Every child writes its metrics to files here (prometheus-client's multiprocess mode) and this process serves
    # their sum on DEALFLOW_METRICS_ADDRESS (the children serve none themselves); a new start begins with none.
    metrics_dir = settings.home / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, "DEALFLOW_DATABASE_URL": settings.effective_database_url,
           "DEALFLOW_TEMPORAL_ADDRESS": settings.effective_temporal_address,
           "DEALFLOW_PUBLIC_URL": settings.effective_public_url, "DEALFLOW_SECRET_KEY": settings.secret_key,
           "PYTHONUNBUFFERED": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "DEALFLOW_METRICS_ADDRESS": ""}
    ready_file = settings.home / "worker.ready"
    root = Path(__file__).resolve().parent
    worker = Child("worker", [sys.executable, str(root / "worker.py")],
                   {**env, "DEALFLOW_WORKER_READY_FILE": str(ready_file)},
                   ready=lambda: ready_file.exists(), log_file=settings.home / "worker.log",
                   before_start=lambda: ready_file.unlink(missing_ok=True))  # a killed worker leaves it behind
    apis = []
    for n in range(1, settings.api_processes + 1):
        ready = settings.home / f"api-{n}.ready"
        apis.append(Child(
            f"api-{n}" if settings.api_processes > 1 else "api",
            [sys.executable, str(root / "cli.py"), "api", "--fd", str(listener.fileno()), "--ready-file", str(ready)],
            env, ready=ready.exists, log_file=settings.home / "api.log", stop_timeout=15,
            before_start=lambda ready=ready: ready.unlink(missing_ok=True), pass_fds=(listener.fileno(),)))
    return [*apis, worker]  # stopped in this order: the API stops taking requests, then the worker finishes


def _announce(child, note: str) -> None:
    """One line per change of a part's state (after the banner; the spinner covers the start)."""
    colour = {"ready": "green", "starting": "yellow", "restarting": "red", "stopped": "dim"}.get(child.state, "")
    pid = f" (pid {child.process.pid})" if child.process and child.state != "stopped" else ""
    log = f"; see {child.log_file}" if child.state == "restarting" and child.log_file else ""
    console.print(f"[{colour}]{child.name:<7}[/] {child.state}{pid}" + (f": {note}" if note else "") + log,
                  highlight=False)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Entry point: errors are one clear line and exit code 1."""
    from core.process import exit_now

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CliError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - one line, the type and the message
        err.print(f"[red]error:[/] {exc.__class__.__name__}: {exc}".replace("\n", " "), highlight=False,
                  soft_wrap=True)
        code = 1
    exit_now(code)


if __name__ == "__main__":
    main()
