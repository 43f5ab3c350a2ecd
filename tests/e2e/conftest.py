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
import contextlib
import copy
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rrset
import pytest
import trustme
import yaml

from tests.probers.snmp import agents
from tests.support.dns_server import DNSServer, dns_server
from tests.support.paths import REPO

EXAMPLE_CONFIG = REPO / "prometheus.example.yml"
EXAMPLE_EXPORTER_ADDRESS = "localhost:10115"  # what the example's relabeling points at
# Every job scrapes this often unless its ProbeJob says otherwise: the probe deadline is then
# 2 s - the exporter's 0.5 s offset, enough for a loaded 2-core CI machine.
SCRAPE_INTERVAL = "2s"
# snmpsim answers a walk of if_mib + system in ~0.6 s; a dead agent holds the scrape for the whole deadline.
SNMP_SCRAPE_INTERVAL = "3s"
SNMP_COMMUNITY = "cisco_16_switch"  # snmpsim's community is the recording's file stem
IN_CI = bool(os.environ.get("CI"))


def require_binary(name: str, package: str = "prometheus") -> str:
    """Skip on a laptop without the Debian package; fail in CI, where .ci/run installs it."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is missing: .ci/run installs the Debian package {package}")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: Path, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            pytest.fail(f"{log.stem} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > end:
                pytest.fail(f"{url} did not answer within {deadline}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(argv: list[str], log: Path, ready_url: str,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        wait_until_answers(ready_url, process, log)
        yield process
    finally:
        stop_process(process)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


# --- targets -------------------------------------------------------------------------------------


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


@dataclass
class TLSTarget:
    url: str          # https://localhost:PORT/ for the http prober
    address: str      # 127.0.0.1:PORT for tls_connect
    ca_file: Path     # the CA the exporter trusts as its system store


class _OkHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_in_thread(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSTarget]:
    """HTTPS with a certificate for localhost and 127.0.0.1 from a test CA."""
    ca = trustme.CA(organization_name="probe_exporter e2e CA")
    cert = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
    ca_file = tmp_path_factory.mktemp("e2e-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    server.daemon_threads = True
    # The handshake happens in the handler thread (first read), not in the accept loop.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port = server.server_address[1]
    with serve_in_thread(server):
        yield TLSTarget(f"https://localhost:{port}/", f"127.0.0.1:{port}", ca_file)


class _BannerHandler(socketserver.StreamRequestHandler):
    """An SSH server as far as ssh_banner can tell: the banner, then read the client's line."""

    def handle(self) -> None:
        self.connection.settimeout(5)
        with contextlib.suppress(OSError):
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2p1 e2e\r\n")
            self.rfile.readline()


@pytest.fixture(scope="session")
def banner_target() -> Iterator[str]:
    """host:port of a TCP listener that greets like an SSH server."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _BannerHandler)
    server.daemon_threads = True
    with serve_in_thread(server):
        yield f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def dead_tcp_target() -> str:
    return f"127.0.0.1:{free_port()}"


EXAMPLE_DNS_NAME = "example.org."  # what the example's dns_udp module asks for


def _answer_example_org(server: DNSServer) -> None:
    """The dns prober tests' server is authoritative for example.test only; the shipped dns_udp module
    asks for example.org A, so that one name gets an answer here too."""
    answer_zone = server.answer

    def answer(query: dns.message.Message, over_udp: bool, source: str) -> dns.message.Message | None:
        if query.question and query.question[0].name.to_text().lower() == EXAMPLE_DNS_NAME:
            response = dns.message.make_response(query)
            response.answer.append(dns.rrset.from_text_list(EXAMPLE_DNS_NAME, 300, "IN", "A", ["192.0.2.80"]))
            return response
        return answer_zone(query, over_udp, source)

    server.answer = answer  # type: ignore[method-assign]


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
            _answer_example_org(server)
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
    return f"127.0.0.1:{free_udp_port()}"


def database_target(address: tuple[str, int], name: str) -> str | None:
    """host:port when the local database server listens; None (and a failure in CI) otherwise."""
    try:
        with socket.create_connection(address, timeout=1):
            return f"{address[0]}:{address[1]}"
    except OSError:
        if IN_CI:
            pytest.fail(f"{name} is not running on {address[0]}:{address[1]}: .ci/run starts it")
        return None


@pytest.fixture(scope="session")
def postgresql_target() -> str | None:
    return database_target(("127.0.0.1", 5432), "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_target() -> str | None:
    return database_target(("127.0.0.1", 3306), "MariaDB")


# --- jobs ----------------------------------------------------------------------------------------


@dataclass
class ProbeJob:
    """One scrape job through the exporter. `expect` maps each target to its expected probe_success
    (/probe jobs) or `up` (/snmp jobs, where a failing device is an HTTP 500)."""

    name: str
    expect: dict[str, int]
    example_job: str = ""  # the prometheus.example.yml job it copies; "" = the job of the same name
    # Only for a module the example has no job for (tcp_connect): the copied job's module param.
    module: str | None = None
    scrape_interval: str | None = None
    scrape_timeout: str | None = None
    # Expected duration range per target when the deadline is what ends it: probe_duration_seconds
    # for /probe jobs, scrape_duration_seconds (the exporter's answer time) for /snmp jobs.
    duration: dict[str, tuple[float, float]] = field(default_factory=dict)
    metrics_path: str = "/probe"  # filled in from the example job

    @property
    def expects_up(self) -> bool:
        return self.metrics_path == "/snmp"


@dataclass
class Environment:
    """What the jobs probe, plus the optional database servers (None when absent, outside CI)."""

    jobs: list[ProbeJob]
    missing: list[str]


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


def _rewrite_exporter_address(job: dict[str, Any], exporter_address: str) -> None:
    rewritten = False
    for rule in job.get("relabel_configs", []):
        if rule.get("target_label") == "__address__" and rule.get("replacement") == EXAMPLE_EXPORTER_ADDRESS:
            rule["replacement"] = exporter_address
            rewritten = True
    if not rewritten:
        pytest.fail(f"job {job['job_name']}: no relabel rule sets __address__ to {EXAMPLE_EXPORTER_ADDRESS}")


def load_example() -> dict[str, Any]:
    example: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    return example


def derive_job(example: dict[str, Any], wanted: ProbeJob, exporter_address: str,
               targets: list[str] | None = None) -> dict[str, Any]:
    """The example's job with local targets and pacing; params and relabeling as written."""
    by_name = {job["job_name"]: job for job in example["scrape_configs"]}
    source = by_name.get(wanted.example_job or wanted.name)
    if source is None:
        pytest.fail(f"prometheus.example.yml has no job {wanted.example_job or wanted.name!r}")
    job = copy.deepcopy(source)
    job["job_name"] = wanted.name
    job["static_configs"] = [{"targets": targets if targets is not None else list(wanted.expect)}]
    # The example's per-job pacing is for production (60 s); the test's global or the ProbeJob's applies.
    job.pop("scrape_interval", None)
    job.pop("scrape_timeout", None)
    for key in ("scrape_interval", "scrape_timeout"):
        if getattr(wanted, key):
            job[key] = getattr(wanted, key)
    if wanted.module is not None:
        job["params"] = {**job.get("params", {}), "module": [wanted.module]}
    _rewrite_exporter_address(job, exporter_address)
    wanted.metrics_path = job.get("metrics_path", "/metrics")
    return job


def self_metrics_jobs(example: dict[str, Any], exporter_address: str) -> list[dict[str, Any]]:
    """The example's jobs for the exporter's own /metrics, pointed at the test exporter."""
    jobs = []
    for source in example["scrape_configs"]:
        if source.get("metrics_path", "/metrics") == "/metrics":
            job = copy.deepcopy(source)
            job["static_configs"] = [{"targets": [exporter_address]}]
            jobs.append(job)
    return jobs


def derive_prometheus_config(example: dict[str, Any], jobs: list[ProbeJob], exporter_address: str) -> dict[str, Any]:
    """The example config with local targets; everything else (params, relabeling) as written."""
    config: dict[str, Any] = {
        "global": {**example.get("global", {}), "scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [derive_job(example, wanted, exporter_address) for wanted in jobs],
    }
    config["scrape_configs"] += self_metrics_jobs(example, exporter_address)
    return config


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, expr: str) -> dict[tuple[str, str], float]:
        """{(job, instance): value} of an instant query."""
        return {(s["metric"].get("job", ""), s["metric"].get("instance", "")): float(s["value"][1])
                for s in self.query(expr)}

    def metadata(self) -> dict[str, str]:
        """{metric name: type} of everything scraped."""
        with urllib.request.urlopen(f"{self.url}/api/v1/metadata", timeout=10) as response:
            body = json.load(response)
        return {name: entries[0]["type"] for name, entries in body["data"].items()}


@dataclass
class Stack(Prometheus):
    exporter_address: str = ""
    jobs: list[ProbeJob] = field(default_factory=list)
    self_jobs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def job(self, name: str) -> ProbeJob:
        return next(job for job in self.jobs if job.name == name)


def start_prometheus(binary: str, workdir: Path, config: dict[str, Any]) -> contextlib.AbstractContextManager[Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    argv = [binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return running(argv, workdir / "prometheus.log", f"http://127.0.0.1:{port}/-/ready")


def prometheus_url(process: subprocess.Popen[bytes]) -> str:
    argv = [str(arg) for arg in process.args]  # type: ignore[union-attr]
    address = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--web.listen-address="))
    return f"http://{address}"


def exporter_argv(address: str, *config_files: Path) -> list[str]:
    argv = [sys.executable, "-m", "probe_exporter", "--web.listen-address", address]
    if config_files:  # the shipped modules, plus the given files (later files' auths win, as upstream)
        argv += ["--config.file", "modules/*.yml"]
        for path in config_files:
            argv += ["--config.file", str(path)]
    return argv


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
