"""probe-exporter with one of its performance settings undone, for the benchmark's comparison rows.

    python bench/http/_serve_variant.py VARIANT [probe-exporter flags]

VARIANT: `asyncio-h11` (uvicorn on the stock asyncio loop and the h11 parser: what runs when uvloop and
httptools are not installed), `no-gc-freeze` (the interpreter's default cyclic GC settings), or
`httpcore-path` (every HTTP module on httpcore instead of the lean HTTP/1.1 exchange).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, when not pip-installed

from probe_exporter import cli

VARIANTS = ("asyncio-h11", "no-gc-freeze", "httpcore-path")


def _stock_asyncio_config(config_class: Any) -> Any:
    def build(*args: Any, **kwargs: Any) -> Any:
        kwargs["loop"] = "asyncio"
        if kwargs.get("http", "auto") == "auto":
            kwargs["http"] = "h11"
        return config_class(*args, **kwargs)

    return build


def _use_httpcore_path() -> None:
    from probe_exporter.probers.http import client as http_client

    http_client.FORCED_PATH = "httpcore"


if __name__ == "__main__":
    variant = sys.argv.pop(1)
    if variant == "asyncio-h11":
        uvicorn.Config = _stock_asyncio_config(uvicorn.Config)  # type: ignore[misc]
    elif variant == "no-gc-freeze":
        cli.freeze_startup_heap = lambda: None
    elif variant == "httpcore-path":
        _use_httpcore_path()
    else:
        sys.exit(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    sys.exit(cli.main())
