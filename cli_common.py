"""What every `dealflow` sub-command shares: the consoles, the one-line error, settings and migrations."""

from __future__ import annotations

from rich.console import Console

from core.settings import ConfigError, Settings, get_settings

console = Console(stderr=False)
err = Console(stderr=True)


class CliError(Exception):
    """An error worth one clear line, not a traceback."""


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _migrate(settings: Settings) -> None:
    from core.db import migrate

    settings.home.mkdir(parents=True, exist_ok=True)
    migrate(settings.effective_database_url)
