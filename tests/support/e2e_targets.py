"""Targets for the end-to-end tests: an HTTPS server's addresses, an SSH-like banner, the example's DNS name."""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.rrset
import pytest

from tests.support.dns_server import DNSServer
from tests.support.prometheus_stack import IN_CI


@dataclass
class TLSTarget:
    url: str          # https://localhost:PORT/ for the http prober
    address: str      # 127.0.0.1:PORT for tls_connect
    ca_file: Path     # the CA the exporter trusts as its system store


class OkHandler(http.server.BaseHTTPRequestHandler):
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


class SSHBannerHandler(socketserver.StreamRequestHandler):
    """An SSH server as far as ssh_banner can tell: the banner, then read the client's line."""

    def handle(self) -> None:
        self.connection.settimeout(5)
        with contextlib.suppress(OSError):
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2p1 e2e\r\n")
            self.rfile.readline()


EXAMPLE_DNS_NAME = "example.org."  # what the example's dns_udp module asks for


def answer_example_org(server: DNSServer) -> None:
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


def database_target(address: tuple[str, int], name: str) -> str | None:
    """host:port when the local database server listens; None (and a failure in CI) otherwise."""
    try:
        with socket.create_connection(address, timeout=1):
            return f"{address[0]}:{address[1]}"
    except OSError:
        if IN_CI:
            pytest.fail(f"{name} is not running on {address[0]}:{address[1]}: .ci/run starts it")
        return None
