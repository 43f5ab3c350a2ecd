"""probe-exporter with one of its performance settings undone, for the benchmark's comparison rows.

    python bench/http/_serve_variant.py VARIANT [probe-exporter flags]

VARIANT: `asyncio-h11` (uvicorn on the stock asyncio loop and the h11 parser: what runs when uvloop and
httptools are not installed), `no-gc-freeze` (the interpreter's default cyclic GC settings), or
`starlette-probe-route` (an experiment, not a setting: /probe served by a plain Starlette Route in front
of FastAPI's, same handler and middleware, to measure FastAPI's per-request cost).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, when not pip-installed

from probe_exporter import cli

VARIANTS = ("asyncio-h11", "no-gc-freeze", "starlette-probe-route")


def _stock_asyncio_config(config_class: Any) -> Any:
    def build(*args: Any, **kwargs: Any) -> Any:
        kwargs["loop"] = "asyncio"
        if kwargs.get("http", "auto") == "auto":
            kwargs["http"] = "h11"
        return config_class(*args, **kwargs)

    return build


def _serve_probe_with_starlette_route() -> None:
    from starlette.routing import Route

    from probe_exporter.web import app as web_app
    from probe_exporter.web import routes

    create_app = web_app.create_app

    def create_app_with_plain_route(exporter: Any) -> Any:
        app = create_app(exporter)
        app.router.routes.insert(0, Route("/probe", routes.probe, methods=["GET", "POST"]))
        return app

    web_app.create_app = create_app_with_plain_route


if __name__ == "__main__":
    variant = sys.argv.pop(1)
    if variant == "asyncio-h11":
        uvicorn.Config = _stock_asyncio_config(uvicorn.Config)  # type: ignore[misc]
    elif variant == "no-gc-freeze":
        cli.freeze_startup_heap = lambda: None
    elif variant == "starlette-probe-route":
        _serve_probe_with_starlette_route()
    else:
        sys.exit(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    sys.exit(cli.main())
