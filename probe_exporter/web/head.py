"""HEAD on every route answers as GET does, without the body (blackbox_exporter's Go mux does the same):
load balancers and uptime checkers send HEAD. One ASGI middleware for the whole app, so no route needs
to list HEAD (FastAPI's routes, unlike Starlette's, do not add it for GET)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            # Headers (Content-Length included) go out as for GET; the body bytes do not.
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)
