"""Processes the HTTP benchmark runs: nginx as the target, the exporters, and their /proc numbers.

Everything listens on 127.0.0.1 on a free port and runs in the foreground of its own process, so the
benchmark can read its CPU time and RSS from /proc and stop it by pid.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import proctree  # noqa: E402

VENV_BIN = REPO / ".venv" / "bin"
BLACKBOX_BINARY = Path("/usr/bin/prometheus-blackbox-exporter")

# The modules both exporters run: a blackbox.yml file, so blackbox_exporter reads the same file.
HTTP_MODULE = """modules:
  http_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
"""
# The https scenario's module: the same, trusting the CA that signed nginx's certificate.
HTTPS_MODULE = """  https_2xx:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca_file}
"""

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "hello from nginx\\n";
        }}
        location /redirect {{
            return 302 /;
        }}
    }}
{tls_server}}}
"""
NGINX_TLS_SERVER = """    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            default_type text/plain;
            return 200 "hello from nginx\\n";
        }}
    }}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"{url} did not answer within {deadline}s") from None
            time.sleep(0.05)


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    url: str  # base URL
    tls_url: str = ""  # nginx's https base URL, when it has one

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return proctree.cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        """VmRSS summed over the process tree (forked workers share some pages: this overcounts them)."""
        total = proctree.status_kib(self.pid, "VmRSS")
        if not total:
            raise RuntimeError(f"no VmRSS for {self.name}")
        return total / 1024

    def pss_mib(self) -> float:
        return proctree.tree_pss_kib(self.pid) / 1024


@contextlib.contextmanager
def running(name: str, argv: list[str], health_url: str, base_url: str, log_path: Path,
            env: dict[str, str] | None = None, cwd: Path = REPO) -> Iterator[Proc]:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        try:
            wait_http(health_url)
        except RuntimeError:
            process.kill()
            raise RuntimeError(f"{name} did not start; its log:\n{log_path.read_text()[-3000:]}") from None
        yield Proc(name, process, base_url)
    finally:
        stop(process, timeout=10)


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


@contextlib.contextmanager
def nginx_target(workdir: Path, tls: bool = False) -> Iterator[Proc]:
    """nginx answering 200 on `/` and 302 to `/` on `/redirect`; with `tls`, also https on `proc.tls_url`
    with a certificate from a CA written to workdir/ca.pem."""
    binary = find_nginx()
    if binary is None:
        sys.exit("nginx not found: apt-get install nginx-light")
    port = free_port()
    tls_server, tls_url = "", ""
    if tls:
        import trustme  # a test dependency: only the https scenario needs it

        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        leaf.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        leaf.private_key_pem.write_to_path(str(workdir / "key.pem"))
        tls_port = free_port()
        tls_server = NGINX_TLS_SERVER.format(port=tls_port, cert=workdir / "cert.pem", key=workdir / "key.pem")
        tls_url = f"https://127.0.0.1:{tls_port}"
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port, tls_server=tls_server))
    url = f"http://127.0.0.1:{port}"
    with running("nginx", [binary, "-p", str(workdir), "-c", str(conf)], url + "/", url,
                 workdir / "nginx.out") as proc:
        proc.tls_url = tls_url
        yield proc


@contextlib.contextmanager
def probe_exporter(workdir: Path, module_file: Path, variant: str = "", workers: int = 0,
                   source: Path | None = None) -> Iterator[Proc]:
    """The exporter as shipped, or with a `variant` of _serve_variant.py (a setting undone, for comparison),
    with `--web.workers` when `workers` > 0 (0: the default, one per CPU), or from another source tree
    (`source`, for an A/B of a change: `python -m probe_exporter` run there imports that tree's package)."""
    port = free_port()
    flags = ["--config.file", str(module_file), "--web.listen-address", f"127.0.0.1:{port}"]
    if workers > 0:
        flags += ["--web.workers", str(workers)]
    if source is not None:
        argv = [str(VENV_BIN / "python"), "-m", "probe_exporter", *flags]
        name = f"probe_exporter ({source.name})"
        variant = source.name
    elif variant:
        argv = [str(VENV_BIN / "python"), str(Path(__file__).with_name("_serve_variant.py")), variant, *flags]
        name = f"probe_exporter ({variant})"
    else:
        # `python -m` is what the probe-exporter script runs, and works without `pip install -e .`.
        argv = [str(VENV_BIN / "python"), "-m", "probe_exporter", *flags]
        name = "probe_exporter"
    if workers > 0:
        name += f" x{workers} workers"
        variant += f"w{workers}"
    url = f"http://127.0.0.1:{port}"
    log = workdir / f"probe_exporter{'-' + variant if variant else ''}.log"
    with running(name, argv, url + "/-/healthy", url, log, cwd=source or REPO) as proc:
        yield proc


@contextlib.contextmanager
def blackbox_exporter(workdir: Path, module_file: Path) -> Iterator[Proc]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(BLACKBOX_BINARY), "--config.file", str(module_file), "--web.listen-address", f"127.0.0.1:{port}",
            "--log.level", "warn"]
    with running("blackbox_exporter", argv, url + "/-/healthy", url, workdir / "blackbox.log") as proc:
        yield proc
