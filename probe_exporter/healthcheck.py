"""`probe-exporter healthcheck`: GET /-/healthy of a running exporter, exit 0 if healthy, 1 if not.

It takes the server's own flags, so it follows `--web.listen-address`, `--web.route-prefix` and
`--web.config.file` (TLS, basic auth). Without them it reads the flags of the exporter running as
PID 1 (a container's entry point), so a Dockerfile's `HEALTHCHECK CMD ["probe-exporter", "healthcheck"]`
works whatever flags the container was started with. Basic auth: the web config holds only bcrypt
hashes, so the credentials come from `--auth.username` and `--auth.password-file` (or
PROBE_EXPORTER_HEALTHCHECK_USERNAME and PROBE_EXPORTER_HEALTHCHECK_PASSWORD_FILE); without them a 401
from the exporter's own auth check counts as alive (the server answered, through TLS and its auth
middleware).
"""

from __future__ import annotations

import argparse
import base64
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from probe_exporter.config import ConfigError

USERNAME_ENV = "PROBE_EXPORTER_HEALTHCHECK_USERNAME"
PASSWORD_FILE_ENV = "PROBE_EXPORTER_HEALTHCHECK_PASSWORD_FILE"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe-exporter healthcheck",
                                     description="Check a running exporter's /-/healthy; exit 0 healthy, 1 not. "
                                                 "Also takes the server's flags (--web.listen-address, "
                                                 "--web.config.file); without them, those of PID --pid.")
    parser.add_argument("--timeout", type=float, default=4.0, help="Seconds to wait for the answer (default 4).")
    parser.add_argument("--pid", type=int, default=1,
                        help="Read the server flags from this exporter process when none are given (default 1).")
    parser.add_argument("--auth.username", dest="username", default=os.environ.get(USERNAME_ENV, ""))
    parser.add_argument("--auth.password-file", dest="password_file", default=os.environ.get(PASSWORD_FILE_ENV, ""))
    return parser


def main(argv: Sequence[str]) -> int:
    from probe_exporter.settings import SERVE, add_flags, from_args
    from probe_exporter.web.prefix import external_url, route_prefix

    args, server_argv = build_parser().parse_known_args(list(argv))
    base_dir = Path.cwd()
    if not server_argv:
        server_argv, base_dir = _flags_of_running_exporter(args.pid) or ([], base_dir)
    server_flags = argparse.ArgumentParser(add_help=False)
    add_flags(server_flags, SERVE)
    server = from_args(server_flags.parse_known_args(server_argv)[0])
    address = server.listen_addresses[0]
    try:
        prefix = route_prefix(server.web_route_prefix, external_url(server.web_external_url, address))
        url, context, authorization = _request_for(address, prefix, server.web_config_file, base_dir, args)
    except (ConfigError, OSError, ssl.SSLError, ValueError) as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout, context=context) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
        if status == 401 and not authorization and err.headers.get("WWW-Authenticate", "").startswith("Basic"):
            return 0  # alive; its basic auth asked for credentials we were not given
    except (urllib.error.URLError, OSError) as err:
        print(f"unhealthy: {url}: {getattr(err, 'reason', err)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


def _request_for(address: str, prefix: str, web_config_file: str, base_dir: Path,
                 args: argparse.Namespace) -> tuple[str, ssl.SSLContext | None, str]:
    from probe_exporter.settings import parse_listen_address

    host, port = parse_listen_address(address)
    # A wildcard listener is reached on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    context: ssl.SSLContext | None = None
    if web_config_file:
        from probe_exporter.config.web import load_web_config

        web_config = load_web_config(str(base_dir / web_config_file))
        tls = web_config.tls_server_config
        if tls.is_enabled():
            context = _trusting_own_certificate(tls.cert, tls.cert_file)
    authorization = ""
    if args.username:
        password = Path(args.password_file).read_text().rstrip("\r\n") if args.password_file else ""
        authorization = "Basic " + base64.b64encode(f"{args.username}:{password}".encode()).decode()
    path = prefix.rstrip("/") + "/-/healthy"  # --web.route-prefix (or the external URL's path) moves it
    return f"{'https' if context else 'http'}://{netloc}{path}", context, authorization


def _trusting_own_certificate(cert: str | None, cert_file: str | None) -> ssl.SSLContext:
    """A client context that accepts exactly the certificate the exporter serves (its web config's), under
    whatever name: the check dials an IP address the certificate need not name."""
    context = ssl.create_default_context(cadata=cert) if cert else ssl.create_default_context(cafile=cert_file)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf signed by a CA is its own trust anchor here
    return context


def _flags_of_running_exporter(pid: int) -> tuple[list[str], Path] | None:
    """The arguments and working directory of exporter process `pid`, if it is one."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return None
    start = next((index + 1 for index, arg in enumerate(argv)
                  if os.path.basename(arg) == "probe-exporter" or arg == "probe_exporter"), None)
    if start is None or argv[start:start + 1] in (["healthcheck"], ["probe"]):
        return None
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        cwd = Path("/")
    return argv[start:], cwd
