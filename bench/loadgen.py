"""A minimal HTTP/1.1 keep-alive client for the benchmarks: the load generator must cost the server's two cores as
little as it can. httpx spent ~5 ms of CPU per request here (as much as the API itself), so a closed loop of 32
httpx clients measured the client as much as the server; this one is a request line, headers, a body and a
Content-Length read over asyncio streams (~0.1 ms). Like wrk, it is for load, not for general use: no TLS, no
redirects, no proxies."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


class LoadClient:
    """POST JSON (or GET) over a pool of keep-alive connections (opened as needed, at most `connections`)."""

    def __init__(self, base: str, headers: dict[str, str], connections: int) -> None:
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"Host: {self._host}:{self._port}\r\nContent-Type: application/json\r\n{extra}"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(connections)
        self._open: list[asyncio.StreamWriter] = []

    async def post(self, path: str, body: dict) -> int:
        """The response's status code (the body is read and dropped). Raises OSError when the server is gone."""
        payload = json.dumps(body).encode()
        return await self._send(
            (f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(payload)}\r\n\r\n").encode() + payload)

    async def get(self, path: str) -> int:
        """GET `path` (with its query string); the response's status code, as for `post`."""
        return await self._send(f"GET {path} HTTP/1.1\r\n{self._head}\r\n".encode())

    async def _send(self, request: bytes) -> int:
        async with self._slots:
            reader, writer = self._idle.pop() if self._idle else await self._connect()
            try:
                writer.write(request)
                status, keep = await _response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return status

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        self._open.append(writer)
        return reader, writer

    async def close(self) -> None:
        for writer in self._open:
            writer.close()
        self._idle.clear()

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection")
    status = int(status_line.split()[1])
    length, chunked, keep = 0, False, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = b"close" not in value.lower()
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep
