"""Probers are imported when the config uses them: at startup and on reload, never inside a first probe.

Each case runs in a fresh interpreter, since this test process has imported every prober already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip()


def test_registry_load_imports_only_what_the_modules_use(tmp_path: Path) -> None:
    config = tmp_path / "modules.yml"
    config.write_text(
        "modules:\n"
        "  dns_a:\n    prober: dns\n    dns:\n      query_name: example.org\n"
        "  dns_b:\n    prober: dns\n    dns:\n      query_name: example.com\n"
        "  pg:\n    prober: sql\n    sql:\n      driver: postgresql\n"
        "      collectors:\n        - collector_name: up\n          metrics:\n"
        "            - metric_name: pg_up\n              type: gauge\n              help: up\n"
        "              values: [up]\n              query: SELECT 1 AS up\n")
    out = _run(f"""
        import sys
        from probe_exporter.config import load_config
        from probe_exporter import registry
        registry.load(load_config([{str(config)!r}]).modules)
        print(sorted(name for name in ("dns", "http", "snmp", "sql", "sql.drivers.postgresql", "sql.drivers.mysql")
                     if f"probe_exporter.probers.{{name}}" in sys.modules))
    """)
    assert out == "['dns', 'sql', 'sql.drivers.postgresql']"


def test_the_shipped_modules_load_every_library_their_probes_need() -> None:
    out = _run("""
        import sys
        from probe_exporter.config import default_config_patterns, load_config
        from probe_exporter import registry
        registry.load(load_config(default_config_patterns()).modules)
        print(sorted(lib for lib in ("httpx", "pysnmp", "psycopg", "aiomysql", "grpc_health", "dns", "aioquic")
                     if lib in sys.modules))
    """)
    # aioquic only for a module with enable_http3, which the shipped modules do not have.
    assert out == "['aiomysql', 'dns', 'grpc_health', 'httpx', 'psycopg', 'pysnmp']"


def test_http3_modules_load_aioquic(tmp_path: Path) -> None:
    config = tmp_path / "h3.yml"
    config.write_text("modules:\n  h3:\n    prober: http\n    http:\n"
                      "      enable_http3: true\n      enable_http2: false\n")
    out = _run(f"""
        import sys
        from probe_exporter.config import load_config
        from probe_exporter import registry
        registry.load(load_config([{str(config)!r}]).modules)
        print("aioquic" in sys.modules)
    """)
    assert out == "True"


def test_a_library_that_fails_to_import_is_logged_and_the_rest_still_load() -> None:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        sys.modules["psycopg"] = None  # as on a platform without it: importing it raises ImportError
        from probe_exporter import logs
        from probe_exporter.config import default_config_patterns, load_config
        from probe_exporter.exporter import load_probers
        logs.setup_logging("info", "logfmt")
        load_probers(load_config(default_config_patterns()))
        print("pysnmp" in sys.modules, "aiomysql" in sys.modules)
    """)], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "True True"
    # A driver that is not installed is its extra missing: named, with the pip extra that installs it.
    assert "needs an optional extra" in result.stderr and "module=postgresql" in result.stderr
    assert "install=probe-exporter[postgresql]" in result.stderr


def test_reload_imports_the_probers_of_new_modules(tmp_path: Path) -> None:
    tcp_only = tmp_path / "tcp.yml"
    tcp_only.write_text("modules:\n  tcp_connect:\n    prober: tcp\n")
    with_dns = tmp_path / "dns.yml"
    with_dns.write_text("modules:\n  dns_a:\n    prober: dns\n    dns:\n      query_name: example.org\n")
    out = _run(f"""
        import asyncio, sys
        from probe_exporter.exporter import Exporter
        from probe_exporter.settings import Settings
        exporter = Exporter(Settings(config_files=[{str(tcp_only)!r}]))
        before = "probe_exporter.probers.dns" in sys.modules
        exporter.settings.config_files.append({str(with_dns)!r})
        asyncio.run(exporter.reload())
        print(before, "probe_exporter.probers.dns" in sys.modules)
    """)
    assert out == "False True"


def test_serving_imports_the_configured_probers_before_it_listens(tmp_path: Path) -> None:
    config = tmp_path / "dns.yml"
    config.write_text("modules:\n  dns_a:\n    prober: dns\n    dns:\n      query_name: example.org\n")
    out = _run(f"""
        import sys
        import uvicorn
        from probe_exporter import cli

        class Served(Exception):
            pass

        def serve(self, sockets=None):
            raise Served

        uvicorn.Server.run = serve
        try:
            cli.main(["--config.file", {str(config)!r}, "--web.listen-address", "127.0.0.1:0", "--web.workers", "1"])
        except Served:
            print("probe_exporter.probers.dns" in sys.modules, "probe_exporter.probers.http" in sys.modules)
    """)
    assert out == "True False"
