"""Signed links (itsdangerous): a salt per purpose, an age limit, key rotation only through the fallbacks, and the
hand-signed links sent before it honoured until `legacy_links_until`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.settings import ConfigError, Settings
from core.signing import sign, verify

OLD, NEW = "o" * 40, "n" * 40
DAY = 86400


def _settings(key: str = NEW, **extra) -> Settings:
    return Settings(secret_key=key, **extra)


def test_a_link_reads_back_for_its_purpose_only():
    settings = _settings()
    token = sign(settings, "unsubscribe", {"t": "acme", "c": "email", "a": "a@example.com"})
    assert verify(settings, "unsubscribe", token, DAY) == {"t": "acme", "c": "email", "a": "a@example.com"}
    assert verify(settings, "document", token, DAY) is None  # the salt is the purpose
    assert verify(settings, "unsubscribe", token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), DAY) is None


def test_a_link_expires(monkeypatch):
    settings = _settings()
    sixty_one_days_ago = time.time() - 61 * DAY
    monkeypatch.setattr(time, "time", lambda: sixty_one_days_ago)  # itsdangerous stamps with time.time()
    token = sign(settings, "unsubscribe", {"a": "x"})
    monkeypatch.undo()
    assert verify(settings, "unsubscribe", token, 62 * DAY) == {"a": "x"}
    assert verify(settings, "unsubscribe", token, 60 * DAY) is None


def test_a_rotated_key_keeps_old_links_only_when_listed_as_a_fallback():
    token = sign(_settings(OLD), "unsubscribe", {"a": "x"})
    assert verify(_settings(NEW), "unsubscribe", token, DAY) is None
    rotated = _settings(NEW, secret_key_fallbacks=[OLD])
    assert verify(rotated, "unsubscribe", token, DAY) == {"a": "x"}
    # and new links are signed with the new key: they read without the fallback
    assert verify(_settings(NEW), "unsubscribe", sign(rotated, "unsubscribe", {"a": "y"}), DAY) == {"a": "y"}


def _hand_signed(secret: str, purpose: str, payload: dict) -> str:
    """A link as core/signing.py made them before itsdangerous (sent out in emails already)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    body = b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{b64(hmac.new(secret.encode(), f'{purpose}.{body}'.encode(), hashlib.sha256).digest()[:18])}"


def test_hand_signed_links_are_honoured_until_the_cutoff_then_refused():
    token = _hand_signed(NEW, "unsubscribe", {"t": "acme", "c": "email", "a": "a@example.com"})
    today = datetime.now(UTC).date()  # the cut-off is a UTC date, whatever the machine's zone
    tomorrow = today + timedelta(days=1)
    assert verify(_settings(legacy_links_until=tomorrow), "unsubscribe", token, DAY)["a"] == "a@example.com"
    assert verify(_settings(legacy_links_until=today), "unsubscribe", token, DAY) is None
    assert verify(_settings(legacy_links_until=tomorrow), "document", token, DAY) is None
    assert verify(_settings(OLD, legacy_links_until=tomorrow), "unsubscribe", token, DAY) is None
    forged = _hand_signed("someone-else" * 4, "unsubscribe", {"a": "x"})
    assert verify(_settings(legacy_links_until=tomorrow), "unsubscribe", forged, DAY) is None


@pytest.mark.parametrize("key, message", [
    ("", "DEALFLOW_SECRET_KEY is not set"),
    ("dev-only-change-me", "DEALFLOW_SECRET_KEY is too short (18 characters)"),
    ("x" * 31, "DEALFLOW_SECRET_KEY is too short (31 characters)"),
])
def test_a_missing_default_or_short_secret_key_is_refused(key, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings(secret_key=key).check_secret_key()
    Settings(secret_key="x" * 32).check_secret_key()


def test_the_app_does_not_start_without_a_proper_key(tmp_path):
    from api.app import create_app

    with pytest.raises(ConfigError, match="DEALFLOW_SECRET_KEY"):
        create_app(Settings(home=tmp_path, secret_key="dev-only-change-me"))


def test_uvicorn_started_directly_without_a_key_says_so_in_one_line(tmp_path):
    """`uvicorn --factory api.app:serve`, the way a FastAPI user starts an app, stops with the reason, no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DEALFLOW_HOME": str(tmp_path / ".dealflow"),
           "DEALFLOW_SECRET_KEY": ""}
    out = subprocess.run([sys.executable, "-m", "uvicorn", "--app-dir", str(root), "--factory", "api.app:serve"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: DEALFLOW_SECRET_KEY is not set"), out.stderr
