"""Signed tokens for links sent to recipients (unsubscribe). HMAC-SHA256 over the payload."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, purpose: str, payload: dict) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac[:18])}"


def verify(secret: str, purpose: str, token: str) -> dict | None:
    """The payload, or None when the token was not made by us for this purpose."""
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()[:18]
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        return json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
