"""A real Prometheus scraping a real probe_exporter, with a config derived from prometheus.example.yml.

The exporter runs as `python -m probe_exporter` (real uvicorn) on the shipped modules plus one test file
that points the `public_v2` SNMP auth at the simulated switch's community. Prometheus is Debian's binary.
Each job of the example file is kept as written (metrics_path, params, relabeling); the test rewrites
only its targets, the exporter address and the scrape pacing (the example's 60 s SQL/SNMP intervals
would make the test wait a minute). Extra jobs are copies of an example job with their own targets and
scrape settings (e.g. a 2 s scrape timeout for a hanging target).

Every target is a local server: HTTP and HTTPS (a trustme CA, made the exporter's system trust store
through SSL_CERT_FILE), a TCP banner listener, the dns prober tests' DNS server, snmpsim serving the
cisco_16_switch recording, PostgreSQL and MariaDB on their usual local ports.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.probers.snmp import agents
from tests.support.deploy_tools import require_binary
from tests.support.dns_server import dns_server
from tests.support.e2e_targets import OkHandler, SSHBannerHandler, TLSTarget, answer_example_org, database_target
from tests.support.ports import free_port
from tests.support.processes import running, serve_in_thread
from tests.support.prometheus_stack import (
    IN_CI,
    SNMP_COMMUNITY,
    SNMP_SCRAPE_INTERVAL,
    Environment,
    ProbeJob,
    Stack,
    derive_prometheus_config,
    exporter_argv,
    load_example,
    prometheus_url,
    start_prometheus,
)


@pytest.fixture(scope="session")
def dead_target() -> str:
    """A loopback port nobody listens on: connection refused."""
    return f"http://127.0.0.1:{free_port()}/"


@pytest.fixture(scope="session")
def hanging_target() -> Iterator[str]:
    """Accepts connections and never answers, so only the probe's deadline ends the probe."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(timeout=2)
    listener.close()
    for conn in held:
        conn.close()


@pytest.fixture(scope="session")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSTarget]:
    """HTTPS with a certificate for localhost and 127.0.0.1 from a test CA."""
    ca = trustme.CA(organization_name="probe_exporter e2e CA")
    cert = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
    ca_file = tmp_path_factory.mktemp("e2e-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OkHandler)
    server.daemon_threads = True
    # The handshake happens in the handler thread (first read), not in the accept loop.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port = server.server_address[1]
    with serve_in_thread(server):
        yield TLSTarget(f"https://localhost:{port}/", f"127.0.0.1:{port}", ca_file)


@pytest.fixture(scope="session")
def banner_target() -> Iterator[str]:
    """host:port of a TCP listener that greets like an SSH server."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SSHBannerHandler)
    server.daemon_threads = True
    with serve_in_thread(server):
        yield f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def dead_tcp_target() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def dns_target() -> Iterator[str]:
    """127.0.0.1:PORT of the DNS test server, on its own event loop in a thread (the e2e tests block)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[str] = []
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        stop.append(asyncio.Event())
        async with dns_server() as server:
            answer_example_org(server)
            address.append(f"127.0.0.1:{server.port}")
            started.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10):
        pytest.fail("the DNS test server did not start")
    yield address[0]
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(timeout=5)
    if not thread.is_alive():
        loop.close()


@pytest.fixture(scope="module")  # stopped after its tests: it keeps probing while it runs
def snmp_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """snmpsim (PyPI) serving cisco_16_switch (59 interfaces); yields 127.0.0.1:PORT."""
    if not agents.SNMPSIM.exists():
        if IN_CI:
            pytest.fail("snmpsim is missing: pip install snmpsim")
        pytest.skip("snmpsim is not installed (pip install snmpsim)")
    with agents.running_snmpsim(tmp_path_factory.mktemp("e2e-snmpsim")) as target:
        yield target


@pytest.fixture(scope="session")
def dead_snmp_target() -> str:
    """A UDP port nobody answers on: the walk only ends at the probe deadline."""
    return f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"


@pytest.fixture(scope="session")
def postgresql_target() -> str | None:
    return database_target(("127.0.0.1", 5432), "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_target() -> str | None:
    return database_target(("127.0.0.1", 3306), "MariaDB")


@pytest.fixture(scope="module")
def probe_environment(plain_http_target: str, dead_target: str, hanging_target: str, tls_target: TLSTarget,
                      banner_target: str, dead_tcp_target: str, dns_target: str, snmp_target: str,
                      dead_snmp_target: str, postgresql_target: str | None,
                      mariadb_target: str | None) -> Environment:
    snmp_interval = {"scrape_interval": SNMP_SCRAPE_INTERVAL, "scrape_timeout": SNMP_SCRAPE_INTERVAL}
    snmp_deadline = (2.3, 2.95)  # 3 s scrape timeout - 0.5 s offset, not the module's 5 s x 3 retries
    jobs = [
        ProbeJob("probe-http", {plain_http_target + "/": 1, tls_target.url: 1, dead_target: 0}),
        # Prometheus sends X-Prometheus-Scrape-Timeout-Seconds: 2; the exporter subtracts its 0.5 s
        # offset, so the hanging target fails after ~1.5 s and the scrape still succeeds (up 1).
        ProbeJob("probe-http-timeout", {hanging_target: 0}, example_job="probe-http", scrape_interval="3s",
                 scrape_timeout="2s", duration={hanging_target: (1.4, 1.95)}),
        ProbeJob("probe-tcp-ssh", {banner_target: 1, dead_tcp_target: 0}),
        ProbeJob("probe-tcp", {banner_target: 1, dead_tcp_target: 0}, example_job="probe-tcp-ssh",
                 module="tcp_connect"),
        ProbeJob("probe-tls-expiry", {tls_target.address: 1}),
        ProbeJob("probe-dns", {dns_target: 1}),
        ProbeJob("probe-sql-demo", {"demo": 1}),
        # /snmp: a dead device is an HTTP 500 (up 0), answered at the deadline the header set.
        ProbeJob("snmp", {snmp_target: 1, dead_snmp_target: 0}, **snmp_interval,
                 duration={dead_snmp_target: snmp_deadline}),
        # /probe: a dead device is probe_success 0 in an HTTP 200.
        ProbeJob("probe-snmp", {snmp_target: 1, dead_snmp_target: 0}, **snmp_interval,
                 duration={dead_snmp_target: snmp_deadline}),
    ]
    missing = []
    for job_name, target in (("probe-sql-postgresql", postgresql_target), ("probe-sql-mariadb", mariadb_target)):
        if target is None:
            missing.append(job_name)
        else:
            jobs.append(ProbeJob(job_name, {target: 1}))
    return Environment(jobs, missing)


@pytest.fixture(scope="session")
def e2e_auths_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's SNMP jobs say auth=public_v2; here it carries the simulated switch's community."""
    path = tmp_path_factory.mktemp("e2e-config") / "snmp_auths.yml"
    path.write_text(f"auths:\n  public_v2:\n    community: {SNMP_COMMUNITY}\n    version: 2\n")
    return path


@pytest.fixture(scope="module")  # stopped after its tests: it keeps probing while it runs
def exporter_address(tmp_path_factory: pytest.TempPathFactory, e2e_auths_file: Path,
                     tls_target: TLSTarget) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("e2e-exporter") / "exporter.log"
    # The test CA replaces the system trust store (OpenSSL's default paths honour SSL_CERT_FILE).
    env = {**os.environ, "SSL_CERT_FILE": str(tls_target.ca_file)}
    with running(exporter_argv(address, e2e_auths_file), log, f"http://{address}/-/healthy", env=env):
        yield address


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")


@pytest.fixture(scope="module")  # stopped after its tests: it keeps probing while it runs
def prometheus_stack(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory,
                     probe_environment: Environment, exporter_address: str) -> Iterator[Stack]:
    """Requests prometheus_binary first, so a laptop without it skips before starting anything else."""
    workdir = tmp_path_factory.mktemp("e2e-prometheus")
    config = derive_prometheus_config(load_example(), probe_environment.jobs, exporter_address)
    self_jobs = [job["job_name"] for job in config["scrape_configs"]
                 if job.get("metrics_path", "/metrics") == "/metrics"]
    with start_prometheus(prometheus_binary, workdir, config) as process:
        yield Stack(prometheus_url(process), exporter_address, probe_environment.jobs, self_jobs,
                    probe_environment.missing)
