"""Response helpers shaped like Go's net/http ones, so error bodies match the Go exporters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from probe_exporter.config import Config
from probe_exporter.exposition import render


def plain_error(status: int, message: str) -> Response:
    """Go's http.Error: one line of text, nosniff."""
    return Response(message + "\n", status_code=status, media_type="text/plain; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff"})


def metrics_response(request: Request, *collectors: object) -> Response:
    body, headers = render(collectors,  # type: ignore[arg-type]
                           request.headers.get("accept"), request.headers.get("accept-encoding"))
    return Response(body, headers=headers)


def first_params(request: Request) -> dict[str, str]:
    """Query parameters, first value winning, as Go's url.Values.Get does."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, value)
    return params


def module_list(values: list[str]) -> list[str]:
    """Repeated and comma-separated names, empty items skipped, first occurrence kept (snmp_exporter)."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            if name and name not in names:
                names.append(name)
    return names


def probe_module_names(request: Request, config: Config, default: str) -> list[str]:
    """The modules a /probe request names. `module=a,b` (or repeated `module`) whose first name is an
    SNMP module combines them into one probe; otherwise blackbox_exporter's rule holds (the first
    `module` value wins, a comma is part of the name)."""
    names = module_list(request.query_params.getlist("module"))
    first = config.modules.get(names[0]) if len(names) > 1 else None
    if first is not None and first.prober == "snmp":
        return names
    return [first_params(request).get("module") or default]
