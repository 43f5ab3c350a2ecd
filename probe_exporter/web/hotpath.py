"""/probe and /snmp answered straight from the middleware stack, past Starlette's exception layer,
exit stack and router: those wrap every request and every `send` in coroutine layers that these
endpoints use none of (about 7% of the worker's samples in a py-spy profile of 20 SNMP rounds at once).

It sits innermost among the app's middleware, so the route prefix, the web config's security and
HEAD-as-GET apply first, as to every route, and an exception still reaches ServerErrorMiddleware
(a 500). A method the endpoint does not take, or any other path, goes on to the router as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class HotPathMiddleware:
    def __init__(self, app: ASGIApp, routes: Mapping[str, tuple[frozenset[str], Endpoint]]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self.routes.get(scope["path"])
            if found is not None and scope["method"] in found[0]:
                response = await found[1](Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
