"""What `dealflow up` shows while it starts and once it is up: one live line per part with its state on a
terminal (plain lines otherwise: tests, CI, a log file), then the banner with the URLs, where the key is, and the
next three steps."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

ROOT = Path(__file__).resolve().parent
STYLE = {"ready": "green", "starting": "yellow", "restarting": "red", "stopped": "dim", "waiting": "dim"}
MARK = {"ready": "✓", "restarting": "✗", "stopped": "·", "waiting": "·"}


class StartupDisplay:
    """`set(part, state, detail)` as each part moves (waiting, starting, ready, restarting)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live_mode = console.is_terminal
        self._rows: dict[str, tuple[str, str, float]] = {}
        self._live: Live | None = None

    def __enter__(self) -> StartupDisplay:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def set(self, part: str, state: str, detail: str = "") -> None:
        previous = self._rows.get(part)
        since = previous[2] if previous and previous[0] == state else time.monotonic()
        self._rows[part] = (state, detail, since)
        if self._live:
            self._live.update(self._render())
        elif not self.live_mode:
            colour = STYLE.get(state, "")
            self.console.print(f"[{colour}]{part:<7}[/] {state}" + (f": {detail}" if detail else ""),
                               highlight=False)

    def _render(self):
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(min_width=9)
        table.add_column(min_width=11)
        table.add_column()
        now = time.monotonic()
        for part, (state, detail, since) in self._rows.items():
            mark = Spinner("dots", style="yellow") if state == "starting" else Text(MARK.get(state, " "),
                                                                                    style=STYLE.get(state, ""))
            took = f" ({now - since:.0f} s)" if state == "starting" and now - since >= 1 else ""
            table.add_row(mark, Text(part, style="bold"), Text(state, style=STYLE.get(state, "")),
                          Text(detail + took, style="dim"))
        return Group(Text("Starting Dealflow", style="bold"), table)


def temporal_ui_url(ui: str, namespace: str, tenant: str) -> str:
    """The Temporal UI's workflow list filtered on the tenant's runs."""
    query = quote('TenantId="' + tenant + '"')
    return f"{ui}/namespaces/{namespace}/workflows?query={query}"


def _shown(path: Path) -> str:
    """A path as the user would type it from here."""
    path = Path(os.path.abspath(path))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def banner(console: Console, *, api: str, ui: str | None, external_temporal: str | None, database: str,
           tenant: str, namespace: str, key: str, key_file: Path, metrics: str = "",
           temporal_metrics: str = "", console_email: str = "", console_password_file: Path | None = None) -> None:
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold")
    rows.add_column()
    rows.add_row("API", f"{api}   (docs: {api}/docs)")
    if console_email:
        rows.add_row("Console", f"{api}/app   (sign in as {console_email}, password in "
                                f"{_shown(console_password_file)})" if console_password_file else f"{api}/app")
    rows.add_row("Temporal UI", ui if ui else f"(external Temporal at {external_temporal})")
    rows.add_row("Database", database)
    if metrics or temporal_metrics:  # Prometheus scrapes these (ops/prometheus.yml); not on the API's port
        shown = [f"http://{a}/metrics" for a in (metrics, temporal_metrics) if a]
        rows.add_row("Metrics", "   ".join(shown) + "   (Temporal SDK: the second)" * (len(shown) == 2))
    rows.add_row("Tenant", tenant)
    # The key itself only on a terminal (a log file or CI output keeps no secret); its file always.
    rows.add_row("Admin key", f"{key}\n(kept in {_shown(key_file)})" if console.is_terminal
                 else f"in {_shown(key_file)}")
    console.print(Panel.fit(rows, title="Dealflow is up", border_style="green", padding=(1, 2)))

    dealflow = _shown(Path(sys.executable).parent / "dealflow")
    definition = _shown(ROOT / "definitions" / "library" / "investor-capital-raise.yaml")
    lead = ('{"first_name": "Maria", "last_name": "Garcia", "email": "maria.garcia@example.com", '
            '"phone": "(512) 555-0142", "source": "web_form", '
            '"property_address": "4500 Oak Ridge Dr, Austin, TX 78731"}')
    console.print("[bold]Next steps[/]")
    # Printed unwrapped (soft_wrap): each command is copied and pasted as one line.
    console.print(f"  1. Post a lead:\n     curl -s -X POST {api}/api/v1/leads -H \"Authorization: Bearer "
                  f"$(cat {_shown(key_file)})\" -H 'Content-Type: application/json' -d '{lead}'",
                  soft_wrap=True, highlight=False, markup=False)
    where = temporal_ui_url(ui, namespace, tenant) if ui else f"your Temporal UI, query TenantId=\"{tenant}\""
    console.print(f"  2. Watch its LeadWorkflow run in the Temporal UI:\n     {where}", soft_wrap=True,
                  highlight=False, markup=False)
    console.print(f"  3. Publish a definition (a cadence ops write in YAML):\n     {dealflow} definitions publish "
                  f"{definition}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"[dim]`{dealflow} status` tells what runs and whether it is healthy; Ctrl-C stops everything.[/]",
                  soft_wrap=True, highlight=False)
