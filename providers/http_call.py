"""Outbound HTTP for a definition's `http_call`: only to allow-listed hosts, with the step's idempotency
key as the `Idempotency-Key` header (the receiver can drop a retried request), a timeout, and answers
sorted as for every provider (providers.base.http_error): no answer, 408, 429 and 5xx are retried, other
4xx are final."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers.base import ProviderError, http_error

MAX_BODY = 10_000  # characters of the answer kept (saved with save_as, visible in the path)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: Any


def host_allowed(url: str, allowed: list[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == entry.lower() or host.endswith("." + entry.lower()) for entry in allowed)


class OutboundHttp:
    def __init__(self, allowed_hosts: list[str], timeout: float = 10.0) -> None:
        self._allowed, self._timeout = allowed_hosts, timeout

    def call(self, method: str, url: str, body: dict[str, Any] | None, idempotency_key: str) -> HttpAnswer:
        if not host_allowed(url, self._allowed):
            raise ProviderError(f"{urlsplit(url).hostname} is not in DEALFLOW_HTTP_CALL_HOSTS",
                                code="host_not_allowed", retryable=False)
        try:
            response = httpx.request(method, url, json=body if method != "GET" else None,
                                     params=body if method == "GET" else None,
                                     headers={"Idempotency-Key": idempotency_key, "User-Agent": "dealflow"},
                                     timeout=self._timeout, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise http_error(None, f"{method} {url} failed: {exc.__class__.__name__}: {exc}", "unreachable") from None
        if response.status_code >= 400:
            raise http_error(response.status_code, f"{method} {url} answered {response.status_code}: "
                                                   f"{response.text[:200]}")
        try:
            answer: Any = response.json() if len(response.text) <= MAX_BODY else response.text[:MAX_BODY]
        except ValueError:
            answer = response.text[:MAX_BODY]
        return HttpAnswer(status=response.status_code, body=answer)
