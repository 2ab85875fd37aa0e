"""SmtpEmail against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from providers.base import OutgoingEmail, ProviderError
from providers.email import SmtpEmail


class Relay:
    def __init__(self) -> None:
        self.received: list[Envelope] = []
        self.reply: str | None = None  # e.g. "550 no such user" to refuse the next message

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        if self.reply:
            return self.reply
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def relay():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    yield handler
    controller.stop()


def _email(**overrides) -> OutgoingEmail:
    fields = dict(message_id="ms_smtp1", to="maria@example.com", sender="Lone Star <offers@lonestar.example>",
                  subject="Your offer", text="Plain text", html="<p>HTML</p>",
                  headers={"List-Unsubscribe": "<https://crm.example.com/u/x>"})
    return OutgoingEmail(**{**fields, **overrides})


def test_smtp_sends_multipart_with_our_message_id(relay):
    provider = SmtpEmail("127.0.0.1", relay.port, starttls=False, timeout=5)
    receipt = provider.send(_email())
    assert len(relay.received) == 1
    envelope = relay.received[0]
    assert envelope.mail_from == "offers@lonestar.example" and envelope.rcpt_tos == ["maria@example.com"]
    message = email.message_from_bytes(envelope.content)
    assert message["Subject"] == "Your offer" and message["List-Unsubscribe"] == "<https://crm.example.com/u/x>"
    assert "ms_smtp1" in message["Message-ID"] and receipt.provider_message_id == message["Message-ID"]
    assert [p.get_content_type() for p in message.walk()][1:] == ["text/plain", "text/html"]
    assert provider.find_sent(_email(), None) is None  # SMTP cannot be asked: at-least-once, same Message-ID


def test_smtp_permanent_refusal_is_final_and_temporary_is_retried(relay):
    provider = SmtpEmail("127.0.0.1", relay.port, starttls=False, timeout=5)
    relay.reply = "550 5.1.1 no such user"
    with pytest.raises(ProviderError) as final:
        provider.send(_email())
    assert not final.value.retryable and final.value.code == "550"
    relay.reply = "451 4.3.0 try again later"
    with pytest.raises(ProviderError) as temporary:
        provider.send(_email())
    assert temporary.value.retryable and temporary.value.code == "451"


def test_smtp_unreachable_is_retried():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    with pytest.raises(ProviderError) as failure:
        SmtpEmail("127.0.0.1", port, starttls=False, timeout=2).send(_email())
    assert failure.value.retryable
