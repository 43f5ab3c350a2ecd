"""Property-based tests of every endpoint's parameters from the app's OpenAPI schema (schemathesis).

The schema is the app's own (`app.openapi()`: the routes document their parameters through
`openapi_extra`, see probe_exporter/web/openapi_docs.py) plus /probe, which is mounted as a plain
Starlette route outside FastAPI's schema. Each operation gets generated query strings and headers,
valid and invalid, sent to a real exporter process (uvicorn) running modules with 1 s timeouts.

Properties: no 5xx except the documented upstream-compatible 500s (a non-numeric
X-Prometheus-Scrape-Timeout-Seconds, a failing /snmp scrape, a failed reload), no hang, and no
Python traceback in any response.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web import openapi_docs
from probe_exporter.web.app import create_app
from probe_exporter.web.routes import PROBE_METHODS
from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import running
from tests.web.fuzz_common import fuzz_modules, is_number

# Generated examples per operation (plus the explicit ones): 20 operations, 20-40 s in all.
MAX_EXAMPLES = 60
# Fixed, so a CI failure reproduces; each operation derives its own seed from it.
FUZZ_SEED = 20261125
# Every module times out after 1 s (SNMP: 1 s, no retries); anything much slower is a hang.
SLOWEST_ANSWER_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 15.0
TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds"

FUZZ_MODULES = fuzz_modules()


def openapi_schema() -> dict[str, Any]:
    """The app's schema with the /probe operation added for every method the route accepts, and /snmp."""
    app = create_app(Exporter(Settings(config_files=[str(REPO / "modules" / "http.yml")])))
    with warnings.catch_warnings():  # the duplicate operationIds of /-/reload's methods, fixed below
        warnings.simplefilter("ignore", UserWarning)
        schema: dict[str, Any] = app.openapi()
    schema["paths"]["/probe"] = {
        method.lower(): {**openapi_docs.PROBE_OPERATION, "operationId": f"probe_{method.lower()}"}
        for method in PROBE_METHODS}
    schema["paths"]["/snmp"] = {"get": {**openapi_docs.SNMP_OPERATION, "operationId": "snmp"}}
    # FastAPI gives every method of one api_route the same operationId; make them unique.
    for path_item in schema["paths"].values():
        for method, operation in path_item.items():
            operation["operationId"] = f"{operation.get('operationId', 'op')}_{method}"
    return schema


# Drawn some of the time instead of arbitrary text, so that requests get past "Unknown module" and
# actually probe (local addresses that refuse or do not answer, the SQLite demo alias).
FUZZ_MODULE_NAMES = ["http_2xx", "tcp_connect", "dns_udp", "sqlite_demo", "if_mib", "if_mib,if_mib"]
FUZZ_TARGETS = ["http://127.0.0.1:1/", "127.0.0.1:1", "127.0.0.1", "demo", "udp://127.0.0.1:1", "[::1]:1",
                "https://localhost:1/path?q=1"]
_LIKELY_VALUES = {"module": FUZZ_MODULE_NAMES, "target": FUZZ_TARGETS, "auth": ["public_v2"]}


# OpenAPI ignores a documented `Accept` header, but the exposition routes negotiate on it: fuzz it too.
ACCEPT_HEADER = {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"},
                 "example": "application/openmetrics-text; version=1.0.0"}


def with_likely_values(schema: dict[str, Any]) -> dict[str, Any]:
    """Test-side only: each documented module/target/auth parameter may also take one of the values above,
    and the routes that render metrics get an Accept header."""
    for path_item in schema["paths"].values():
        for operation in path_item.values():
            if any(param["name"] == "Accept-Encoding" for param in operation.get("parameters", [])):
                operation["parameters"] = [*operation["parameters"], ACCEPT_HEADER]
            for param in operation.get("parameters", []):
                likely = _LIKELY_VALUES.get(param["name"]) if param["in"] == "query" else None
                if likely is not None and param["schema"].get("type") == "string":
                    param["schema"] = {"anyOf": [{"enum": likely}, param["schema"]]}
    return schema


schema = schemathesis.openapi.from_dict(with_likely_values(openapi_schema()),
                                        config=SchemathesisConfig(seed=FUZZ_SEED))
schema.config.generation.update(modes=["positive", "negative"], max_examples=MAX_EXAMPLES)
schema.config.phases.update(phases=["examples", "fuzzing"])


@dataclass
class FuzzedExporter:
    url: str
    log: Path


@pytest.fixture(scope="module")
def fuzzed_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedExporter]:
    workdir: Path = tmp_path_factory.mktemp("openapi-fuzz")
    config = workdir / "modules.yml"
    config.write_text(FUZZ_MODULES)
    address = f"127.0.0.1:{free_port()}"
    log = workdir / "exporter.log"
    # Error level: the log then holds only what went wrong (an unhandled exception, a crashed task).
    argv = [sys.executable, "-m", "probe_exporter", "--web.listen-address", address, "--config.file", str(config),
            "--log.level", "error"]
    with running(argv, log, f"http://{address}/-/healthy", env=dict(os.environ)):
        yield FuzzedExporter(f"http://{address}", log)


def documented_server_error(case: Case, body: str) -> bool:
    """The 500s kept from blackbox_exporter / snmp_exporter, each only where it applies."""
    headers = {name.lower(): value for name, value in (case.headers or {}).items()}
    if (case.path in ("/probe", "/snmp") and body.startswith("Failed to parse timeout from Prometheus header: ")
            and headers.get(TIMEOUT_HEADER) and not is_number(headers[TIMEOUT_HEADER])):
        return True
    if case.path == "/snmp" and body.startswith("An error has occurred while serving metrics:"):
        return True
    return case.path == "/-/reload" and body.startswith("failed to reload config:")


@schema.parametrize()
def test_endpoint_parameters(case: Case, fuzzed_exporter: FuzzedExporter) -> None:
    exporter_url = fuzzed_exporter.url
    response = case.call(base_url=exporter_url, timeout=REQUEST_TIMEOUT_SECONDS)
    request = f"{case.method} {case.path} query={case.query} headers={case.headers}"
    assert response.elapsed < SLOWEST_ANSWER_SECONDS, f"{request}: answered after {response.elapsed:.1f}s"
    if response.status_code >= 500:
        body = response.text
        if case.method == "HEAD":  # no body: the reason is in the same request's GET answer
            # The URL as it was sent: serialising case.query again can differ (an object value).
            body = httpx.get(str(response.request.url), headers=case.headers, timeout=REQUEST_TIMEOUT_SECONDS).text
        assert documented_server_error(case, body), f"{request}: {response.status_code} {body[:500]}"
    assert "Traceback (most recent call last)" not in response.text, f"{request}: {response.text[:2000]}"
    assert response.status_code != 422, f"{request}: FastAPI validation instead of the route's own reason"


def test_after_fuzzing_nothing_is_stuck_and_nothing_crashed(fuzzed_exporter: FuzzedExporter) -> None:
    """Runs after the generated requests (file order): no probe is still in flight (every one ended at
    its deadline) and the exporter logged no unhandled exception."""
    deadline = time.monotonic() + SLOWEST_ANSWER_SECONDS
    while True:
        page = httpx.get(f"{fuzzed_exporter.url}/metrics", timeout=REQUEST_TIMEOUT_SECONDS).text
        in_flight = [line for line in page.splitlines()
                     if line.startswith(("probe_exporter_probes_in_flight", "snmp_request_in_flight"))
                     and not line.endswith(" 0.0") and not line.endswith(" 0")]
        if not in_flight or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not in_flight, f"still running after the fuzzing: {in_flight}"
    log = fuzzed_exporter.log.read_text(errors="replace")
    for marker in ("Traceback", "Exception in ASGI application", "exception was never retrieved"):
        assert marker not in log, log[-4000:]


def test_every_route_is_in_the_fuzzed_schema() -> None:
    """A new route gets documented (and so fuzzed) or is listed here with the reason."""
    not_fuzzed = {"/openapi.json"}  # FastAPI's own
    app = create_app(Exporter(Settings(config_files=[str(REPO / "modules" / "http.yml")])))
    routes: set[str] = set()
    for route in app.routes:  # FastAPI keeps included routers as one entry each, with the original inside
        router = getattr(route, "original_router", None)
        for sub in router.routes if router is not None else [route]:
            routes.add(getattr(sub, "path", ""))
    assert routes - not_fuzzed == set(openapi_schema()["paths"])
