"""Embedded state under `home` (.dealflow/): the folder 0700 and its secret files 0600, from the moment they
exist (a file written and chmod-ed afterwards is readable by others in between)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> Path:
    """Create `path` (and missing parents) 0700; an existing one is narrowed to 0700 too."""
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    path.chmod(FOLDER_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` created 0600 (replacing it atomically, so a reader never sees half a key)."""
    private_folder(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def secret_key_in(home: Path) -> str:
    """The embedded setup's secret key, kept in <home>/secret-key (made once, 64 hex characters)."""
    path = home / "secret-key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            path.chmod(FILE_MODE)
            return key
    key = secrets.token_hex(32)
    write_private(path, key + "\n")
    return key
