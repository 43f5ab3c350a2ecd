"""Response helpers shaped like Go's net/http ones, so error bodies match the Go exporters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

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
