"""Email providers: SendGrid (the real SDK), SMTP (any relay) and the embedded outbox."""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import urllib.error
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, Header, Mail

from providers.base import OutgoingEmail, ProviderError, Receipt, http_error

log = logging.getLogger("dealflow.providers.email")
MESSAGE_ID_ARG = "dealflow_message_id"


class OutboxEmail:
    """The embedded default: the message row IS the outbox (shown by GET /messages); nothing leaves."""

    name = "outbox"

    def send(self, email: OutgoingEmail) -> Receipt:
        return Receipt(provider_message_id=f"outbox-{email.message_id}")

    def find_sent(self, email: OutgoingEmail, since: datetime) -> Receipt | None:
        return self.send(email)  # delivery to the outbox is the database write itself


class SendGridEmail:
    name = "sendgrid"

    def __init__(self, api_key: str, host: str = "https://api.sendgrid.com", timeout: float = 15.0) -> None:
        self._client = SendGridAPIClient(api_key=api_key, host=host)
        self._client.client.timeout = timeout

    def send(self, email: OutgoingEmail) -> Receipt:
        mail = Mail(from_email=email.sender, to_emails=email.to, subject=email.subject)
        mail.add_content(Content("text/plain", email.text))
        if email.html:
            mail.add_content(Content("text/html", email.html))
        mail.add_custom_arg(CustomArg(MESSAGE_ID_ARG, email.message_id))
        for name, value in email.headers.items():
            mail.add_header(Header(name, value))
        try:
            response = self._client.send(mail)
        except HTTPError as exc:
            raise http_error(exc.status_code, f"SendGrid: {_sendgrid_reason(exc.body)}") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            raise http_error(None, f"SendGrid unreachable: {exc}") from None
        provider_id = response.headers.get("X-Message-Id") or ""
        return Receipt(provider_message_id=provider_id)

    def find_sent(self, email: OutgoingEmail, since: datetime) -> Receipt | None:
        """Email Activity API, searched by our custom arg."""
        query = f"unique_args['{MESSAGE_ID_ARG}']=\"{email.message_id}\""
        try:
            response = self._client.client.messages.get(query_params={"query": query, "limit": 1})
        except HTTPError as exc:
            if exc.status_code in (401, 403, 404):
                # No Email Activity add-on: the send cannot be confirmed; sending again is the lesser evil
                # for email (receivers dedupe on our custom arg / Message-ID less reliably, but it is logged).
                log.warning("SendGrid activity lookup unavailable (%s); %s will be sent again",
                            exc.status_code, email.message_id)
                return None
            raise http_error(exc.status_code, f"SendGrid lookup: {_sendgrid_reason(exc.body)}") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            raise http_error(None, f"SendGrid unreachable: {exc}") from None
        messages = json.loads(response.body or b"{}").get("messages", [])
        return Receipt(provider_message_id=messages[0]["msg_id"]) if messages else None


def _sendgrid_reason(body: bytes | str | None) -> str:
    try:
        errors = json.loads(body or b"{}").get("errors", [])
        return "; ".join(e.get("message", "") for e in errors) or str(body)[:300]
    except (ValueError, AttributeError):
        return str(body)[:300]


class SmtpEmail:
    """Any SMTP relay. SMTP cannot be asked whether a message was accepted, so after a crash mid-send the
    message is sent again with the SAME Message-ID (at-least-once; mail clients collapse duplicates)."""

    name = "smtp"

    def __init__(self, host: str, port: int = 587, username: str | None = None, password: str | None = None,
                 starttls: bool = True, timeout: float = 15.0) -> None:
        self.host, self.port, self.username, self.password = host, port, username, password
        self.starttls, self.timeout = starttls, timeout

    def send(self, email: OutgoingEmail) -> Receipt:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = email.sender, email.to, email.subject
        message_id = make_msgid(idstring=email.message_id, domain="dealflow")
        message["Message-ID"] = message_id
        for name, value in email.headers.items():
            message[name] = value
        message.set_content(email.text)
        if email.html:
            message.add_alternative(email.html, subtype="html")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise ProviderError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=exc.smtp_code >= 400
                                and exc.smtp_code < 500, code=str(exc.smtp_code)) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise ProviderError(f"SMTP refused recipient: {exc.recipients}", retryable=False,
                                code="recipient_refused") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise http_error(None, f"SMTP unreachable: {exc}") from None
        return Receipt(provider_message_id=message_id)

    def find_sent(self, email: OutgoingEmail, since: datetime) -> Receipt | None:
        return None
