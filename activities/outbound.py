"""A definition's `http_call`: thin over providers.http_call (allow-listed hosts, Idempotency-Key)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.payloads import HttpCallInput
from providers.base import ProviderError
from providers.http_call import OutboundHttp


class OutboundActivities:
    def __init__(self, http: OutboundHttp) -> None:
        self._http = http

    @activity.defn
    def http_call(self, request: HttpCallInput) -> dict:
        """{status, body}; retried on no answer, 408, 429, 5xx; other 4xx and refused hosts are final."""
        try:
            answer = self._http.call(request.method, request.url, request.body, request.idempotency_key)
        except ProviderError as exc:
            if exc.retryable:
                raise ApplicationError(exc.message, type="ProviderUnavailable") from None
            raise ApplicationError(exc.message, {"code": exc.code}, type="HttpRejected", non_retryable=True) from None
        return {"status": answer.status, "body": answer.body}
