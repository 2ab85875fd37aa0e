"""Fake of SendGrid's v3 API: POST /v3/mail/send (shape-checked like the real one) and the Email Activity
search GET /v3/messages?query=unique_args['...']="..." used to find an earlier send."""

from __future__ import annotations

import re
import uuid

from tests.fakes.server import FakeServer, Recorded, Reply


class SendGridFake(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.accepted: dict[str, dict] = {}  # X-Message-Id -> request body

    def _error(self, status: int, message: str, field: str | None = None) -> Reply:
        return Reply(status, {"errors": [{"message": message, "field": field, "help": None}]})

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "The provided authorization grant is invalid, expired, or revoked")
        if request.method == "POST" and request.path == "/v3/mail/send":
            return self._send(request)
        if request.method == "GET" and request.path == "/v3/messages":
            query = request.query.get("query", [""])[0]
            match = re.fullmatch(r"unique_args\['(\w+)'\]=\"([^\"]+)\"", query)
            if not match:
                return self._error(400, f"invalid query {query!r}", "query")
            name, value = match.groups()
            found = [{"msg_id": msg_id, "status": "processed"} for msg_id, body in self.accepted.items()
                     if body.get("custom_args", {}).get(name) == value]
            return Reply(200, {"messages": found})
        return self._error(404, "not found")

    def _send(self, request: Recorded) -> Reply:
        body = request.json()
        personalizations = body.get("personalizations") or []
        if not personalizations or not personalizations[0].get("to"):
            return self._error(400, "The personalizations field is required", "personalizations")
        if not body.get("from", {}).get("email"):
            return self._error(400, "The from object must be provided", "from")
        if not body.get("subject") and not personalizations[0].get("subject"):
            return self._error(400, "The subject is required", "subject")
        contents = body.get("content") or []
        if not contents or contents[0].get("type") != "text/plain":
            return self._error(400, "text/plain must be the first content type", "content")
        to = personalizations[0]["to"][0]["email"]
        if to.endswith("@invalid.example"):
            return self._error(400, "Does not contain a valid address.", "personalizations.0.to.0.email")
        msg_id = uuid.uuid4().hex[:22]
        self.accepted[msg_id] = body
        return Reply(202, None, {"X-Message-Id": msg_id})
