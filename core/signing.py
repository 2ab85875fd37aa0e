"""Signed links sent to recipients (unsubscribe), made and checked by itsdangerous: a salt per purpose (a token made
for one purpose is refused for another), a timestamp in the token and a max age when it is read.

Key rotation: tokens are signed with `secret_key` and accepted when signed with it or with one of
`secret_key_fallbacks` (itsdangerous tries every key it is given, newest last), so links already sent keep working
after a rotation only while the old key is listed there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from itsdangerous import BadData, URLSafeTimedSerializer

from core.settings import Settings


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    # itsdangerous signs with the LAST key and verifies with any of them.
    keys = [*settings.secret_key_fallbacks, settings.secret_key]
    return URLSafeTimedSerializer(keys, salt=f"dealflow.{purpose}")


def sign(settings: Settings, purpose: str, payload: dict) -> str:
    return _serializer(settings, purpose).dumps(payload)


def verify(settings: Settings, purpose: str, token: str, max_age_seconds: int) -> dict | None:
    """The payload, or None when the token was not made by us for this purpose, or is older than the max age."""
    try:
        payload = _serializer(settings, purpose).loads(token, max_age=max_age_seconds)
    except BadData:
        payload = _legacy_verify(settings, purpose, token)
    return payload if isinstance(payload, dict) else None


def _legacy_verify(settings: Settings, purpose: str, token: str) -> dict | None:
    """Links signed by hand before itsdangerous (HMAC-SHA256 over `purpose.body`, no timestamp): accepted until
    `legacy_links_until` so that links already sent keep working for a while; delete after that date."""
    if datetime.now(UTC).date() >= settings.legacy_links_until:
        return None
    body, _, mac = token.partition(".")

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    try:
        given = unb64(mac)
        for key in (settings.secret_key, *settings.secret_key_fallbacks):
            expected = hmac.new(key.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()[:18]
            if mac and hmac.compare_digest(expected, given):
                return json.loads(unb64(body))
    except (ValueError, TypeError):
        pass
    return None
