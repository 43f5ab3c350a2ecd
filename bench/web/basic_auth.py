"""What `basic_auth_users` costs per request: /-/healthy over the real uvicorn server, without a web
config, with basic auth (bcrypt cost 10, as `htpasswd -nBC 10` writes) and a cached check, and with
a wrong password (a full bcrypt round every time). Prints requests per second; asserts nothing.

    .venv/bin/python -m bench.web.basic_auth [--seconds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bcrypt
import httpx

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.web.conftest import running_server

PASSWORD = "bench-password"


def _rate(url: str, seconds: float, auth: tuple[str, str] | None) -> tuple[float, int]:
    with httpx.Client() as client:
        status = client.get(url, auth=auth).status_code  # warm-up (and the first, uncached bcrypt)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            client.get(url, auth=auth)
            count += 1
        return count / (time.perf_counter() - start), status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modules = Path(tmp) / "m.yml"
        modules.write_text("modules:\n  http_2xx:\n    prober: http\n")
        web = Path(tmp) / "web.yml"
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
        web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        cases = [("no web config", None, None), ("basic auth, right password (cached)", web, ("prometheus", PASSWORD)),
                 ("basic auth, wrong password (bcrypt each time)", web, ("prometheus", "wrong"))]
        print(f"{'case':48} {'req/s':>9} {'status':>6}")
        for name, web_config, auth in cases:
            settings = Settings(config_files=[str(modules)], web_config_file=str(web_config or ""))
            with running_server(create_app(Exporter(settings))) as port:
                rate, status = _rate(f"http://127.0.0.1:{port}/-/healthy", args.seconds, auth)
            print(f"{name:48} {rate:9.0f} {status:6d}")


if __name__ == "__main__":
    main()
