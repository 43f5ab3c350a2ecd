"""OpenAPI documentation of the routes' parameters (documentation only: nothing here is read at request time).

The routes take the raw `Request` (blackbox_exporter's and snmp_exporter's query semantics: first value
wins, repeated or comma-separated modules), so FastAPI cannot infer their parameters; these blocks are
passed as `openapi_extra` and describe what the handlers read.
"""

from __future__ import annotations

from typing import Any


def _param(name: str, where: str, description: str, example: Any = None, required: bool = False,
           schema: dict[str, Any] | None = None) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": required, "description": description,
                             "schema": schema or {"type": "string"}}
    if example is not None:
        param["example"] = example
    return param


SCRAPE_TIMEOUT_HEADER = _param(
    "X-Prometheus-Scrape-Timeout-Seconds", "header",
    "Prometheus' scrape timeout, in seconds; the probe deadline is this minus --timeout-offset, capped by the "
    "module's timeout (120 s minus the offset when absent). A non-numeric value is an HTTP 500, as upstream.",
    example="10")
# (`Accept` picks text 0.0.4 or OpenMetrics; OpenAPI ignores an `Accept` header parameter, so it is not listed.)
ACCEPT_ENCODING_HEADER = _param("Accept-Encoding", "header", "gzip when accepted.", example="gzip")
_EXPOSITION_HEADERS = [ACCEPT_ENCODING_HEADER]

PROBE_PARAMETERS = [
    _param("target", "query", "What to probe: a URL, host:port, host, SNMP agent, database address or alias.",
           example="https://prometheus.io", required=True),
    _param("module", "query", "The module to run (default http_2xx). Several SNMP modules: module=a,b or "
           "repeated.", example="http_2xx"),
    _param("debug", "query", "true: return the probe log, the metrics and the module config as text.",
           example="true"),
    _param("hostname", "query", "HTTP Host header and TLS server name (blackbox_exporter's hostname).",
           example="example.org"),
    _param("auth", "query", "SNMP: the auth (credentials) from the config.", example="public_v2"),
    SCRAPE_TIMEOUT_HEADER,
    *_EXPOSITION_HEADERS,
]

# /probe and /snmp are mounted as plain Starlette routes (the hot paths skip FastAPI), so they are not in
# the generated schema; these are their operations, for the schema and for the schema-based tests.
PROBE_OPERATION: dict[str, Any] = {
    "summary": "Probe a target with a module",
    "description": "HTTP 200 with probe_success 0 or 1; 400 on bad input; 403 outside allowed_targets.",
    "parameters": PROBE_PARAMETERS,
    "responses": {"200": {"description": "The probe's metrics (or its debug output)."},
                  "400": {"description": "A one-line reason."}},
}

SNMP_OPERATION: dict[str, Any] = {
    "summary": "Walk an SNMP agent with modules, as snmp_exporter's /snmp",
    "description": "HTTP 200 with the samples; 400 on bad input; 500 when a module fails.",
    "responses": {"200": {"description": "The modules' samples and snmp_scrape_* metrics."},
                  "400": {"description": "A one-line reason."},
                  "500": {"description": "An error has occurred while serving metrics: and the reasons."}},
    "parameters": [
        _param("target", "query", "The SNMP agent: [udp://]host[:port].", example="192.0.2.10", required=True),
        _param("module", "query", "Modules to walk (default if_mib); repeatable and comma-separated.",
               schema={"type": "array", "items": {"type": "string"}}, example=["if_mib", "system"]),
        _param("auth", "query", "The auth from the config (default public_v2).", example="public_v2"),
        _param("snmp_context", "query", "SNMPv3 context name."),
        _param("snmp_engineid", "query", "SNMPv3 context engine ID."),
        SCRAPE_TIMEOUT_HEADER,
        *_EXPOSITION_HEADERS,
    ],
}

LOGS = {"parameters": [
    _param("id", "query", "A probe id from the history (digits).", example="1"),
    _param("target", "query", "The oldest kept probe of this target (instead of id).",
           example="https://prometheus.io"),
    _param("module", "query", "With target: only probes of this module.", example="http_2xx"),
]}

LANDING = {"parameters": [
    _param("module", "query", "The web form: module to run.", example="http_2xx"),
    _param("target", "query", "The web form: target to probe.", example="https://prometheus.io"),
    _param("params", "query", "The web form: extra /probe parameters, URL-encoded.", example="hostname=example.org"),
]}

METRICS = {"parameters": _EXPOSITION_HEADERS}
