"""The ASGI application: routes plus the lifespan that owns shared prober resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from probe_exporter import __version__, logs, registry
from probe_exporter.config import ConfigError
from probe_exporter.exporter import Exporter
from probe_exporter.web import routes, snmp
from probe_exporter.web.head import HeadAsGetMiddleware
from probe_exporter.web.hotpath import HotPathMiddleware
from probe_exporter.web.prefix import RoutePrefixMiddleware, external_url, route_prefix
from probe_exporter.web.security import WebConfigSource, WebSecurityMiddleware

_NO_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(exporter: Exporter, web_config: WebConfigSource | None = None) -> FastAPI:
    """The app; with `--web.config.file` (or `web_config`), every request goes through basic auth,
    the configured response headers and the rate limit first."""
    if web_config is None and exporter.settings.web_config_file:
        web_config = WebConfigSource(exporter.settings.web_config_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_on_signal(exporter)))
        lag_sampler = loop.create_task(exporter.metrics.sample_event_loop_lag())
        try:
            yield
        finally:
            lag_sampler.cancel()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await registry.shutdown()

    # FastAPI's OpenTelemetry layer is off: it looks up the global providers on every request (~10 µs of
    # CPU each), and the exporter's own telemetry is its /metrics.
    app = FastAPI(title="probe_exporter", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  telemetry=_NO_TELEMETRY)
    app.state.exporter = exporter
    app.state.web_config = web_config
    hot_paths = {"/probe": (routes.PROBE_METHODS, routes.probe), "/snmp": (["GET"], snmp.snmp)}
    # Added first, so it runs innermost: the middleware added after it sees the request first (hotpath.py).
    app.add_middleware(HotPathMiddleware, routes={path: (frozenset(methods), endpoint)
                                                  for path, (methods, endpoint) in hot_paths.items()})
    # Inside the security middleware below, so it sees the request's own method.
    app.add_middleware(HeadAsGetMiddleware)
    if web_config is not None:
        app.add_middleware(WebSecurityMiddleware, source=web_config)
    # The hot paths as routes too: a method HotPathMiddleware does not take gets the router's 405.
    # Plain Starlette routes (openapi_docs documents them by hand).
    for path, (methods, endpoint) in hot_paths.items():
        app.add_route(path, endpoint, methods=methods, include_in_schema=False)
    app.include_router(routes.router)
    app.include_router(snmp.router)
    settings = exporter.settings
    external = external_url(settings.web_external_url, settings.listen_addresses[0])
    prefix = route_prefix(settings.web_route_prefix, external)
    if prefix != "/":  # no extra layer on the hot path for the usual setup
        app.add_middleware(RoutePrefixMiddleware, prefix=prefix, external=external)
    return app


async def _reload_on_signal(exporter: Exporter) -> None:
    logs.log(logging.INFO, "Received SIGHUP, reloading config")
    with contextlib.suppress(ConfigError):  # already logged; the old config keeps serving
        await exporter.reload()
