"""Listener limits against a real exporter process: half-open connections time out, a flood of them at
a soft open-files limit of 1024 does not lock /probe out, and the uvicorn hook the limits use exists."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tests.support.paths import REPO
from tests.support.ports import free_port
from tests.support.processes import stop_process

SOFT_OPEN_FILES = 1024
HALF_OPEN = 1100
MODULES = "modules:\n  tcp_connect: {prober: tcp, timeout: 5s}\n"
PARTIAL_HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"


def test_uvicorn_still_calls_the_response_hook_the_limits_rely_on() -> None:
    """listener.py re-arms the head deadline from on_response_complete; both protocols must have it."""
    for protocol in (H11Protocol, HttpToolsProtocol):
        assert callable(getattr(protocol, "on_response_complete", None)), protocol


@pytest.fixture()
def tcp_listener() -> Iterator[int]:
    """A local TCP server that accepts and holds connections: the target of the TCP probes."""
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _limit_open_files() -> None:
    """Runs in the child before exec: soft and hard limit 1024, so the exporter cannot raise it at startup
    (the case where raising it is not allowed)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_OPEN_FILES, SOFT_OPEN_FILES))


@contextlib.contextmanager
def exporter(tmp_path: Path, *flags: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    config = tmp_path / "modules.yml"
    config.write_text(MODULES)
    port = free_port()
    log = open(tmp_path / "exporter.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "probe_exporter", "--config.file", str(config),
                                "--web.listen-address", f"127.0.0.1:{port}", *flags],
                               stdout=log, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=_limit_open_files)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/-/healthy", timeout=1).status_code == 200:
                    break
            assert process.poll() is None, (tmp_path / "exporter.log").read_text()
            time.sleep(0.05)
        yield base, process
    finally:
        stop_process(process)
        log.close()


def _half_open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(PARTIAL_HEAD)
    return sock


def _closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """Whether the exporter closes `sock` within `wait` seconds (whatever it still sends first is read)."""
    sock.settimeout(wait)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.fixture()
def many_files() -> Iterator[None]:
    """This test process holds 1,100 sockets itself: lift its own soft limit if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HALF_OPEN + 200
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"the hard open-files limit {hard} is below the {needed} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(tree_pid for child in children for tree_pid in _process_tree(int(child)))]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_flood_of_half_open_connections_does_not_lock_out_probe(tmp_path: Path, tcp_listener: int,
                                                                  many_files: None, workers: int) -> None:
    # The connection cap is per worker process (each has its own open-files table).
    with exporter(tmp_path, "--web.workers", str(workers)) as (base, process):
        port = int(base.rsplit(":", 1)[1])
        flood = [_half_open(port) for _ in range(HALF_OPEN)]
        try:
            # Connections are accepted in order: once this answers, the whole flood has been accepted.
            assert httpx.get(base + "/-/healthy", timeout=30).status_code == 200
            response = httpx.get(f"{base}/probe", params={"module": "tcp_connect",
                                                          "target": f"127.0.0.1:{tcp_listener}"}, timeout=1.0)
            assert response.status_code == 200 and "\nprobe_success 1\n" in response.text, response.text
            for pid in _process_tree(process.pid):
                open_files = len(os.listdir(f"/proc/{pid}/fd"))
                assert open_files < SOFT_OPEN_FILES, (pid, open_files)
            # The overflow was closed early, not left to starve the process.
            closed = sum(_closed_by_peer(sock, 0.001) for sock in flood)
            assert closed >= HALF_OPEN - workers * (SOFT_OPEN_FILES // 2), closed
        finally:
            for sock in flood:
                sock.close()


def test_a_half_open_connection_is_closed_after_the_read_header_timeout(tmp_path: Path) -> None:
    with exporter(tmp_path, "--web.read-header-timeout", "500ms") as (base, _):
        port = int(base.rsplit(":", 1)[1])
        first_request = _half_open(port)
        # A later request on a keep-alive connection gets the same deadline once its first byte arrives.
        keep_alive = socket.create_connection(("127.0.0.1", port), timeout=5)
        keep_alive.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert keep_alive.recv(65536).startswith(b"HTTP/1.1 200 OK")
        keep_alive.sendall(PARTIAL_HEAD)
        try:
            assert _closed_by_peer(first_request, 15)
            assert _closed_by_peer(keep_alive, 15)
            # A whole request still gets its answer.
            assert httpx.get(base + "/-/healthy", timeout=10).status_code == 200
        finally:
            first_request.close()
            keep_alive.close()


def test_an_oversized_request_head_is_refused_with_431(tmp_path: Path) -> None:
    with exporter(tmp_path) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for _ in range(100):
                    sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 431 ")
