"""What every `dealflow` sub-command shares: the consoles, the one-line error, settings and migrations."""

from __future__ import annotations

from rich.console import Console

from core.settings import ConfigError, Settings, get_settings

console = Console(stderr=False)
err = Console(stderr=True)


class CliError(Exception):
    """An error worth one clear line, not a traceback."""


def load_settings() -> Settings:
    """The settings, or a one-line CliError for a configuration mistake."""
    try:
        return get_settings()
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def migrate_database(settings: Settings) -> None:
    """Bring the CRM database (DEALFLOW_DATABASE_URL or the embedded SQLite file) to the newest migration."""
    from core.db import migrate

    from core.state import private_folder

    private_folder(settings.home)
    migrate(settings.effective_database_url)
