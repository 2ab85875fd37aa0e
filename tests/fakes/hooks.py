"""A webhook receiver (Zapier-like) for definitions' http_call: answers 200 with what it got; failures scripted."""

from __future__ import annotations

from tests.fakes.server import FakeServer, Recorded, Reply


class HookReceiverFake(FakeServer):
    def handle(self, request: Recorded) -> Reply:
        return Reply(200, {"ok": True, "received": request.json() if request.body else None})
