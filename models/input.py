"""What every request body obeys, whatever the endpoint (issue 10): no NUL in any text (Postgres refuses it, and
it ends strings early in logs and providers), free-form JSON (a lead's `custom`, an event's `data`) no deeper
than `json_max_depth` and no larger than `json_max_bytes` once serialised (a 1,000-deep `custom` was stored and
could then never be read back), and CR/LF refused in the one-line texts that end up in headers (a lead's name
in an email subject). The limits are settings; each refusal is a 422 naming the field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, field_validator

from core.settings import get_settings


def _walk(value: Any, depth: int, limit: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text may not contain NUL (U+0000)")
    elif isinstance(value, dict | list | tuple):
        if depth > limit:
            raise ValueError(f"nested deeper than {limit} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                raise ValueError("a key may not contain NUL (U+0000)")
            _walk(item, depth + 1, limit)


def check_input(value: Any) -> Any:
    """Raise ValueError when `value` breaks the limits every body obeys; return it unchanged otherwise."""
    settings = get_settings()
    _walk(value, 1, settings.json_max_depth)
    if isinstance(value, dict | list) and value:
        size = len(json.dumps(value, default=str))
        if size > settings.json_max_bytes:
            raise ValueError(f"{size:,} bytes of JSON, more than the {settings.json_max_bytes:,} allowed")
    return value


class Input(BaseModel):
    """Base of request bodies: every field passes `check_input` after its own validation."""

    @field_validator("*", mode="after")
    @classmethod
    def _limits(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, int | float) else check_input(value)


def _one_line(value: str | None) -> str | None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError("must be one line (no CR or LF): it is used in message headers")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
