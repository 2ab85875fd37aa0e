"""Fake property-data API: GET /property?address=... -> facts JSON, 404 when unknown; failures scripted."""

from __future__ import annotations

from tests.fakes.server import FakeServer, Recorded, Reply


class PropertyApiFake(FakeServer):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.properties: dict[str, dict] = {}

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"error": "invalid api key"})
        address = request.query.get("address", [""])[0]
        if address in self.properties:
            return Reply(200, self.properties[address])
        return Reply(404, {"error": "not found"})
