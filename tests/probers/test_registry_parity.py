"""Every built-in prober name the config accepts probes a real server successfully.

The names come from the registry, the one list config validation and dispatch share, so a name
added there without an implementation (or without a case here) fails this test.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe_exporter import registry
from probe_exporter.config import Config, load_config
from probe_exporter.pipeline import run_probe

# The SNMP agent fixtures live with the SNMP tests; imported here, pytest serves them to this module too.
from tests.probers.snmp.conftest import snmpsim_agent, test_auths_yml  # noqa: F401
from tests.support.dns_server import dns_server
from tests.support.grpc_server import grpc_health_server
from tests.support.http_server import LocalServer, Resp
from tests.support.network_probe import log_text, names
from tests.support.tcp_servers import send_lines, serve


@dataclass
class Case:
    """What one prober probes: the module (a dict, or a module of `config`), the target, the
    query parameters, and a metric only that prober produces."""

    target: str
    marker: str
    module: dict[str, Any] = field(default_factory=dict)
    config: Config | None = None
    module_name: str = ""
    params: dict[str, str] = field(default_factory=dict)


CaseFactory = Callable[[pytest.FixtureRequest, Path], contextlib.AbstractAsyncContextManager[Case]]


@contextlib.asynccontextmanager
async def http_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    server: LocalServer = request.getfixturevalue("http_server")
    yield Case(server.route(lambda req: Resp(200, body=b"ok\n")), "probe_http_status_code",
               {"prober": "http", "http": {"preferred_ip_protocol": "ip4"}})


@contextlib.asynccontextmanager
async def tcp_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_lines(writer, "220 parity ready")

    async with serve(banner) as port:
        yield Case(f"127.0.0.1:{port}", "probe_failed_due_to_regex",
                   {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip4",
                                             "query_response": [{"expect": "^220 parity"}]}})


@contextlib.asynccontextmanager
async def icmp_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    yield Case("127.0.0.1", "probe_icmp_reply_hop_limit", {"prober": "icmp"})


@contextlib.asynccontextmanager
async def dns_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    async with dns_server() as server:
        yield Case(f"127.0.0.1:{server.port}", "probe_dns_answer_rrs",
                   {"prober": "dns", "dns": {"preferred_ip_protocol": "ip4", "query_name": "www.example.test",
                                             "query_type": "A"}})


@contextlib.asynccontextmanager
async def grpc_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    async with grpc_health_server() as server:
        yield Case(f"127.0.0.1:{server.port}", "probe_grpc_healthcheck_response",
                   {"prober": "grpc", "grpc": {"preferred_ip_protocol": "ip4"}})


@contextlib.asynccontextmanager
async def unix_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HELLO unix\n")
        await writer.drain()
        writer.close()

    path = str(tmp_path / "parity.sock")
    server = await asyncio.start_unix_server(banner, path)
    try:
        yield Case(path, "probe_failed_due_to_regex",
                   {"prober": "unix", "unix": {"query_response": [{"expect": "^HELLO"}]}})
    finally:
        server.close()


@contextlib.asynccontextmanager
async def websocket_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve

    async def greet(connection: ServerConnection) -> None:
        await connection.send("hello parity")
        await connection.wait_closed()

    async with ws_serve(greet, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield Case(f"ws://127.0.0.1:{port}/", "probe_websocket_connection_upgraded",
                   {"prober": "websocket", "websocket": {"preferred_ip_protocol": "ip4",
                                                         "query_response": [{"expect": "^hello"}]}})


@contextlib.asynccontextmanager
async def snmp_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    agent: str = request.getfixturevalue("snmpsim_agent")
    config = load_config([str(request.getfixturevalue("test_auths_yml"))])
    yield Case(agent, "snmp_scrape_pdus_returned", config=config, module_name="types", params={"auth": "types"})


@contextlib.asynccontextmanager
async def sql_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    with contextlib.closing(sqlite3.connect(tmp_path / "app.db")) as connection:
        connection.executescript("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (7);")
        connection.commit()
    (tmp_path / "app.collector.yml").write_text(
        "collector_name: app\nmetrics:\n  - metric_name: parity_rows\n    type: gauge\n    help: rows\n"
        "    values: [n]\n    query: SELECT n FROM t\n")
    (tmp_path / "sql.yml").write_text(
        "modules:\n  lite:\n    prober: sql\n    sql:\n      driver: sqlite\n      target_allow_paths: ['*.db']\n"
        "      targets:\n        app: {path: app.db}\n      collector_files: [app.collector.yml]\n")
    yield Case("app", "parity_rows", config=load_config([str(tmp_path / "sql.yml")]), module_name="lite")


CASES: dict[str, CaseFactory] = {
    "http": http_case, "tcp": tcp_case, "icmp": icmp_case, "dns": dns_case, "grpc": grpc_case,
    "unix": unix_case, "websocket": websocket_case, "snmp": snmp_case, "sql": sql_case,
}


# Plugins installed next to the exporter are probed by their own tests (the example plugin by
# tests/test_registry_plugins.py, against a real redis-server).
BUILTIN = [name for name in registry.names() if registry.entry(name).builtin]


def test_every_builtin_name_has_a_case() -> None:
    assert set(BUILTIN) == set(CASES), "a built-in prober without a real-server case (or a stale case)"


@pytest.mark.parametrize("prober", BUILTIN)
async def test_every_registered_prober_probes_a_real_server(prober: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    factory = CASES.get(prober)
    assert factory is not None, f"prober {prober!r} is registered but no test probes a real server with it"
    async with factory(request, tmp_path) as case:
        if case.config is not None:
            module = case.config.modules[case.module_name]
        else:
            module = load_module(case.module, tmp_path)
        assert module.prober == prober
        outcome = await run_probe(case.module_name or "parity", module, case.target, 10.0, case.params, case.config)
    assert outcome.success, log_text(outcome)
    assert case.marker in names(outcome)


def load_module(body: dict[str, Any], tmp_path: Path) -> Any:
    """The module as a config file gives it (through the loader, not just the model)."""
    path = tmp_path / "parity.yml"
    path.write_text(yaml.safe_dump({"modules": {"parity": body}}))
    return load_config([str(path)]).modules["parity"]
