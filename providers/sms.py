"""SMS providers: Twilio (the real SDK) and the embedded outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from providers.base import OutgoingSms, ProviderError, Receipt, http_error

# Twilio error codes that mean "this recipient must not be texted" (21610: replied STOP).
OPTED_OUT_CODES = {"21610"}


class OutboxSms:
    name = "outbox"

    def send(self, sms: OutgoingSms) -> Receipt:
        return Receipt(provider_message_id=f"outbox-{sms.message_id}")

    def find_sent(self, sms: OutgoingSms, since: datetime) -> Receipt | None:
        return self.send(sms)


class TwilioSms:
    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, *, messaging_service_sid: str | None = None,
                 from_number: str | None = None, base_url: str = "https://api.twilio.com",
                 timeout: float = 15.0) -> None:
        self._client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        self._client.api.base_url = base_url
        self.messaging_service_sid, self.from_number = messaging_service_sid, from_number

    def send(self, sms: OutgoingSms) -> Receipt:
        sender: dict[str, str] = {}
        if sms.sender or self.from_number:
            sender["from_"] = sms.sender or self.from_number
        else:
            sender["messaging_service_sid"] = self.messaging_service_sid
        if sms.status_callback:
            sender["status_callback"] = sms.status_callback
        try:
            message = self._client.messages.create(to=sms.to, body=sms.body, **sender)
        except TwilioRestException as exc:
            raise http_error(exc.status, f"Twilio {exc.code}: {exc.msg}",
                             code=str(exc.code) if exc.code else None) from None
        except RequestException as exc:
            raise http_error(None, f"Twilio unreachable: {exc}") from None
        return Receipt(provider_message_id=message.sid)

    def find_sent(self, sms: OutgoingSms, since: datetime) -> Receipt | None:
        """Twilio keeps no custom metadata on a message: match recipient, sender and exact body created since
        the first attempt (our body is rendered once and stored, so a retry sends identical text). Queued
        messages have no date_sent yet, so the newest messages to the recipient are read instead."""
        try:
            candidates = self._client.messages.list(to=sms.to, limit=50)
        except TwilioRestException as exc:
            raise http_error(exc.status, f"Twilio lookup {exc.code}: {exc.msg}") from None
        except RequestException as exc:
            raise http_error(None, f"Twilio unreachable: {exc}") from None
        sender = sms.sender or self.from_number
        for message in candidates:
            created = message.date_created
            if created is not None and created < since - timedelta(minutes=5):
                continue
            if message.body == sms.body and (sender is None or message.from_ == sender):
                return Receipt(provider_message_id=message.sid)
        return None


def is_opt_out(error: ProviderError) -> bool:
    return error.code in OPTED_OUT_CODES
