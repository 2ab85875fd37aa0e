"""Standard security headers on every answer (OWASP's HTTP headers cheat sheet): no MIME sniffing, no referrer
(unsubscribe links carry their token in the path), no framing, a Content-Security-Policy, and HSTS when the API is
reached over https. Plain ASGI, like RequestContext: a header list added to each response start."""

from __future__ import annotations

# JSON and the small pages (unsubscribe): nothing but their own inline style and a form posting back.
STRICT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
                 "frame-ancestors 'none'; base-uri 'none'")
# /docs and /redoc: Swagger UI starts from an inline script and both style inline; ReDoc runs a worker from a blob.
# Everything else comes from the API itself (/docs-assets, /openapi.json): no CDN is allowed either.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
               "object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'")

# The console (/app): its own script and stylesheet only (no inline script or style, no other origin); its calls
# go to the API on the same origin.
CONSOLE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                  "connect-src 'self'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; "
                  "base-uri 'none'")


class SecurityHeaders:
    def __init__(self, app, https: bool = False) -> None:
        self.app = app
        common = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                  ("X-Frame-Options", "DENY"), ("Cross-Origin-Opener-Policy", "same-origin")]
        if https:  # only a site reached over https may say so (a browser ignores it over http anyway)
            common.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
        # Encoded once: a response start gets them appended as raw pairs (MutableHeaders was 5% of an intake)
        self.strict = _raw([*common, ("Content-Security-Policy", STRICT_POLICY)])
        self.docs = _raw([*common, ("Content-Security-Policy", DOCS_POLICY)])
        self.console = _raw([*common, ("Content-Security-Policy", CONSOLE_POLICY)])

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path == "/docs" or path == "/redoc" or path.startswith("/docs/"):
            extra = self.docs
        elif path == "/app" or path.startswith("/app/"):
            extra = self.console
        else:
            extra = self.strict

        async def answer(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))  # a copy: a response's own list is not changed
                own = {name.lower() for name, _ in headers}
                message["headers"] = headers + [pair for pair in extra if pair[0] not in own]  # a route's own stays
            await send(message)

        await self.app(scope, receive, answer)


def _raw(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
