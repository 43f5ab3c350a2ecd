"""Response helpers shaped like Go's net/http ones, so error bodies match the Go exporters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from probe_exporter.exposition import render

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def go_quote(text: str) -> str:
    """Go's %q (strconv.Quote), so user input in an error stays on one line as upstream prints it."""
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


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
