"""HTTP routes. No probing logic here: requests are validated and handed to the runner."""

from __future__ import annotations

import html
from urllib.parse import unquote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from probe_exporter import __version__
from probe_exporter.config import ConfigError
from probe_exporter.config.render import config_as_yaml
from probe_exporter.exporter import Exporter
from probe_exporter.probers import BadRequest
from probe_exporter.runner import compute_timeout, debug_output, run_probe
from probe_exporter.web.responses import first_params, go_quote, metrics_response, plain_error

DEFAULT_MODULE = "http_2xx"

router = APIRouter()


def _exporter(request: Request) -> Exporter:
    exporter: Exporter = request.app.state.exporter
    return exporter


@router.api_route("/probe", methods=["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"],
                  include_in_schema=True)
async def probe(request: Request) -> Response:
    exporter = _exporter(request)
    params = first_params(request)
    module_name = params.get("module") or DEFAULT_MODULE
    config = exporter.config
    module = config.modules.get(module_name)
    if module is None:
        exporter.metrics.unknown_module.inc()
        exporter.metrics.bad_requests.labels("probe").inc()
        return plain_error(400, f"Unknown module {go_quote(module_name)}")
    try:
        timeout = compute_timeout(request.headers.get("x-prometheus-scrape-timeout-seconds"),
                                  exporter.settings.timeout_offset, module.timeout)
    except ValueError as err:
        return plain_error(500, f"Failed to parse timeout from Prometheus header: {err}")
    target = params.get("target", "")
    if not target:
        exporter.metrics.bad_requests.labels("probe").inc()
        return plain_error(400, "Target parameter is missing")
    # Decoded a second time, as blackbox_exporter does since #1525, for double-encoded targets.
    target = unquote(target)
    in_flight = exporter.metrics.in_flight.labels(module_name)
    in_flight.inc()
    try:
        outcome = await run_probe(module_name, module, target, timeout, params, config)
    except BadRequest as err:
        exporter.metrics.bad_requests.labels("probe").inc()
        return plain_error(400, str(err).replace("\n", "\\n"))  # user input must not split the line
    finally:
        in_flight.dec()
    exporter.metrics.observe_probe(module_name, module.prober, outcome.success, outcome.duration)
    if params.get("debug") == "true":
        return PlainTextResponse(debug_output(outcome, module))
    return metrics_response(request, outcome.metrics)


@router.get("/metrics")
async def self_metrics(request: Request) -> Response:
    return metrics_response(request, _exporter(request).metrics.registry)


@router.get("/-/healthy")
async def healthy() -> Response:
    return PlainTextResponse("Healthy")


@router.get("/-/ready")
async def ready(request: Request) -> Response:
    return PlainTextResponse("Ready")


@router.api_route("/-/reload", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def reload(request: Request) -> Response:
    if request.method != "POST":
        return plain_error(405, "This endpoint requires a POST request.")
    try:
        await _exporter(request).reload()
    except ConfigError as err:
        return plain_error(500, f"failed to reload config: {err}")
    return Response(b"", status_code=200)


@router.get("/config")
async def show_config(request: Request) -> Response:
    return PlainTextResponse(config_as_yaml(_exporter(request).config))


@router.get("/")
async def landing(request: Request) -> Response:
    config = _exporter(request).config
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(module.prober)}</td>"
        f"<td>{html.escape(config.module_files.get(name, ''))}</td></tr>"
        for name, module in sorted(config.modules.items()))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Probe Exporter</title></head>
<body><h1>Probe Exporter</h1><p>Version {html.escape(__version__)}</p>
<p><a href="probe?target=prometheus.io&amp;module=http_2xx">Probe prometheus.io for http_2xx</a></p>
<p><a href="probe?target=prometheus.io&amp;module=http_2xx&amp;debug=true">Debug probe prometheus.io for http_2xx</a></p>
<p><a href="metrics">Metrics</a> · <a href="config">Configuration</a> · <a href="-/healthy">Health</a></p>
<h2>Modules</h2><table><tr><th>Module</th><th>Prober</th><th>File</th></tr>{rows}</table>
</body></html>"""
    return HTMLResponse(page)
