"""Fake of Twilio's Messages API (2010-04-01): create (form-encoded, basic auth) and list, with the
real error codes for an invalid number (21211) and an unsubscribed recipient (21610)."""

from __future__ import annotations

import base64
import re
import uuid
from email.utils import format_datetime

from models.base import utcnow
from tests.fakes.server import FakeServer, Recorded, Reply


class TwilioFake(FakeServer):
    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict] = []
        self.unsubscribed: set[str] = set()

    def _error(self, status: int, code: int, message: str) -> Reply:
        return Reply(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                              "status": status})

    def handle(self, request: Recorded) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return self._error(401, 20003, "Authenticate")
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if request.path != path:
            return self._error(404, 20404, "The requested resource was not found")
        if request.method == "GET":
            to = request.query.get("To", [None])[0]
            found = [m for m in reversed(self.messages) if to is None or m["to"] == to]
            return Reply(200, {"messages": found, "next_page_uri": None, "page": 0, "page_size": 50,
                               "uri": path, "first_page_uri": path, "previous_page_uri": None})
        form = request.form()
        to, body = form.get("To", ""), form.get("Body", "")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not re.fullmatch(r"\+[1-9]\d{7,14}", to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.unsubscribed:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if not body:
            return self._error(400, 21602, "Message body is required.")
        now = format_datetime(utcnow(), usegmt=True)
        message = {"sid": "SM" + uuid.uuid4().hex, "account_sid": self.account_sid, "to": to,
                   "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
                   "body": body, "status": "queued", "num_segments": "1", "direction": "outbound-api",
                   "date_created": now, "date_updated": now, "date_sent": None, "api_version": "2010-04-01",
                   "price": None, "error_code": None, "error_message": None, "uri": f"{path[:-5]}/x.json",
                   "status_callback": form.get("StatusCallback")}
        self.messages.append(message)
        return Reply(201, message)
