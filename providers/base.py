"""What every messaging provider takes and gives back, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class OutgoingEmail:
    message_id: str  # ours; travels as a SendGrid custom arg / SMTP Message-ID so a retry can find the send
    to: str
    sender: str  # "Name <address>"
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutgoingSms:
    message_id: str
    to: str  # E.164
    body: str
    sender: str | None = None  # E.164; None means the provider's messaging service
    status_callback: str | None = None


@dataclass(frozen=True)
class Receipt:
    provider_message_id: str


class ProviderError(Exception):
    """A provider refused or failed. `retryable` decides between backoff and a recorded failure."""

    def __init__(self, message: str, *, retryable: bool, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message, self.retryable, self.code, self.status = message, retryable, code, status


def http_error(status: int | None, message: str, code: str | None = None) -> ProviderError:
    """5xx, 429 and no answer at all are worth retrying; any other 4xx is final."""
    retryable = status is None or status >= 500 or status in (408, 429)
    return ProviderError(message, retryable=retryable, code=code or (str(status) if status else None),
                         status=status)


class EmailProvider(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> Receipt: ...

    def find_sent(self, email: OutgoingEmail, since: datetime) -> Receipt | None:
        """After a crash mid-send: did the provider accept this message already?"""
        ...


class SmsProvider(Protocol):
    name: str

    def send(self, sms: OutgoingSms) -> Receipt: ...

    def find_sent(self, sms: OutgoingSms, since: datetime) -> Receipt | None: ...
