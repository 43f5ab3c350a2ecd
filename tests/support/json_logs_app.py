"""The exporter with test-only routes that fail in every way a library logs (run as a module by
tests/test_json_logs.py): an exception inside a route, a task whose exception nobody retrieves, a warning
and an exception in a thread. The product has none of these routes."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import warnings
from typing import Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse

from probe_exporter import cli
from probe_exporter.web import app as web_app

_create_app = web_app.create_app


async def _raise(_: Any) -> PlainTextResponse:
    raise RuntimeError("raised inside a route\nwith a second line")


async def _orphan_task(_: Any) -> PlainTextResponse:
    async def fail() -> None:
        raise ValueError("nobody retrieves this")

    task = asyncio.get_running_loop().create_task(fail())
    await asyncio.sleep(0.01)
    del task
    gc.collect()  # the done task is freed now: asyncio logs "Task exception was never retrieved"
    return PlainTextResponse("ok")


async def _warn(_: Any) -> PlainTextResponse:
    warnings.warn("a library's warning", UserWarning, stacklevel=1)
    return PlainTextResponse("ok")


async def _thread(_: Any) -> PlainTextResponse:
    def fail() -> None:
        raise KeyError("in a thread")

    thread = threading.Thread(target=fail, name="failing-thread")
    thread.start()
    thread.join()
    return PlainTextResponse("ok")


def create_app_with_test_routes(*args: Any, **kwargs: Any) -> FastAPI:
    app = _create_app(*args, **kwargs)
    for path, endpoint in (("/test/raise", _raise), ("/test/orphan-task", _orphan_task), ("/test/warn", _warn),
                           ("/test/thread", _thread)):
        app.add_route(path, endpoint)
    return app


if __name__ == "__main__":
    web_app.create_app = create_app_with_test_routes
    sys.exit(cli.main(sys.argv[1:]))
