"""HTTP routes. No probing logic here: a request becomes a pipeline.ProbeRequest, the outcome a response."""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from probe_exporter.config import ConfigError
from probe_exporter.config.render import config_as_yaml
from probe_exporter.exporter import Exporter
from probe_exporter.history import ProbeRecord
from probe_exporter.pipeline import ProbeRequest, Verdict
from probe_exporter.web import openapi_docs, pages
from probe_exporter.web.responses import first_params, metrics_response, plain_error, probe_module_names
from probe_exporter.workers.history import history_records, log_by_id, log_by_target

DEFAULT_MODULE = "http_2xx"

router = APIRouter()


def _exporter(request: Request) -> Exporter:
    exporter: Exporter = request.app.state.exporter
    return exporter


PROBE_METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]


async def probe(request: Request) -> Response:
    """/probe, answered by web/hotpath.py (and mounted by create_app as a plain route, see there)."""
    exporter = _exporter(request)
    params = first_params(request)
    names = probe_module_names(request, exporter.config, DEFAULT_MODULE)
    # Decoded a second time, as blackbox_exporter does since #1525, for double-encoded targets.
    target = unquote(params.get("target", ""))
    outcome = await exporter.probe(ProbeRequest(
        names, target, params, endpoint="probe",
        scrape_timeout_header=request.headers.get("x-prometheus-scrape-timeout-seconds")))
    if outcome.verdict is not Verdict.PROBED:
        return plain_error(int(outcome.verdict), outcome.reason)
    if params.get("debug") == "true":
        return PlainTextResponse(outcome.debug_text())
    return metrics_response(request, outcome.metrics)


@router.get("/metrics", openapi_extra=openapi_docs.METRICS)
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
    # A large snmp.yml takes about a second to render the first time: not on the event loop.
    return PlainTextResponse(await asyncio.to_thread(config_as_yaml, _exporter(request).config))


# The landing page form's deadline when the module sets none or a longer one (no Prometheus header).
FORM_DEFAULT_TIMEOUT = 10.0
FORM_MAX_DEBUG_CHARS = 200_000


@router.get("/", openapi_extra=openapi_docs.LANDING)
async def landing(request: Request) -> Response:
    exporter = _exporter(request)
    params = first_params(request)
    result = None
    if "target" in params or "module" in params:
        result = await _run_from_form(exporter, params)
    return HTMLResponse(pages.landing_page(exporter, result, await history_records(exporter)))


async def _run_from_form(exporter: Exporter, form: dict[str, str]) -> pages.FormResult:
    module_name, target, extra = form.get("module", ""), form.get("target", "").strip(), form.get("params", "")
    result = pages.FormResult(module_name=module_name, target=target, extra_params=extra)
    params = {key: value for key, value in parse_qsl(extra, keep_blank_values=True)}
    params.update(module=module_name, target=target)
    outcome = await exporter.probe(ProbeRequest([module_name], target, params, endpoint="form",
                                                timeout=FORM_DEFAULT_TIMEOUT))
    if outcome.verdict is not Verdict.PROBED:
        result.error = outcome.reason
        return result
    result.record = ProbeRecord(outcome, outcome.module)
    text = outcome.debug_text()
    if len(text) > FORM_MAX_DEBUG_CHARS:  # a big walk would make a page no phone can show
        text = (text[:FORM_MAX_DEBUG_CHARS] + f"\n… {len(text) - FORM_MAX_DEBUG_CHARS} more characters: "
                "use /probe?debug=true for the whole output\n")
    result.debug_text = text
    return result


@functools.cache
def _stylesheet() -> bytes:
    return (importlib.resources.files("probe_exporter.web") / "static" / "style.css").read_bytes()


@router.get("/static/style.css")
async def stylesheet() -> Response:
    return Response(_stylesheet(), media_type="text/css; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/logs", openapi_extra=openapi_docs.LOGS)
async def probe_logs(request: Request) -> Response:
    """A probe's debug text from the history, by id or by target (blackbox_exporter's /logs)."""
    exporter = _exporter(request)
    params = first_params(request)
    probe_id, target, module_name = params.get("id", ""), params.get("target", ""), params.get("module", "")
    if probe_id and target:
        return plain_error(400, "Probe id and target can't be defined at the same time")
    if not probe_id and not target:
        if module_name:
            return plain_error(400, "Probe module filter only works in conjunction with target parameter")
        return plain_error(400, "Probe id or target must be defined as http query parameters")
    if probe_id:
        if not (probe_id.isascii() and probe_id.isdigit() and len(probe_id) <= 19):  # int() limits; ids are int64
            return plain_error(400, "Invalid probe id")
        text = await log_by_id(exporter, int(probe_id))
        if text is None:
            return plain_error(404, "Probe id not found")
    else:
        text = await log_by_target(exporter, target, module_name or None)
        if text is None:
            return plain_error(404, "Probe target not found")
    return PlainTextResponse(text)
