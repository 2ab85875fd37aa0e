"""A tiny threaded HTTP server for provider fakes: records requests, scripts failures, can hold a reply."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer(ABC):
    """Subclasses implement `handle(request) -> Reply`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.failures: list[Reply] = []  # served (once each) before normal handling
        self.hold = threading.Event()
        self.hold.set()  # clear() to make the next replies wait until set() again
        self.held = threading.Event()  # set when a request is being held
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parsed = urlparse(self.path)
                request = Recorded(self.command, parsed.path, parse_qs(parsed.query),
                                   {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                with fake._lock:
                    fake.requests.append(request)
                    reply = fake.failures.pop(0) if fake.failures else None
                if reply is None:
                    reply = fake.handle(request)
                if not fake.hold.is_set():
                    fake.held.set()
                    fake.hold.wait(60)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode() \
                    if reply.body is not None else b""
                try:
                    self.send_response(reply.status)
                    if not any(k.lower() == "content-type" for k in reply.headers):
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client died while we held the reply (the kill test)

            do_GET = do_POST = do_PUT = _serve  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hold.set()
        self._server.shutdown()
        self._server.server_close()

    @abstractmethod
    def handle(self, request: Recorded) -> Reply:
        """The fake provider's answer to one request."""

    def calls(self, method: str, path_suffix: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]
