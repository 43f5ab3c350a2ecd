"""The wheel as a newcomer gets it: built from the checkout, installed (not editable) into a fresh venv
outside the checkout, and run from there on the core install (no extras)."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.exporter_process import ExporterProcess, non_json_lines
from tests.support.paths import REPO

pytestmark = pytest.mark.packaging

# Files under probe_exporter/ that are not data the package reads: sources, and the C extension an
# editable install builds in place (the wheel carries its own build of it).
_NOT_DATA_SUFFIXES = (".py", ".pyc", ".c", ".so")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), str(REPO)],
                   check=True, cwd=out, stdout=subprocess.DEVNULL)
    (built,) = out.glob("probe_exporter-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its core dependencies, pinned to the versions this test venv
    resolved (so pip only unpacks what its cache holds)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    pins = venv / "pins.txt"
    pins.write_text("".join(line + "\n" for line in freeze.splitlines()
                            if "==" in line and not line.lower().startswith("probe-exporter")))
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-c", str(pins),
                    str(wheel)], check=True, cwd=venv, stdout=subprocess.DEVNULL)
    return venv


# Modules whose libraries only an extra installs (the shipped modules add grpc, postgresql and mysql ones).
EXTRA_MODULES = """\
modules:
  http3_2xx:
    prober: http
    http: {enable_http3: true, enable_http2: false}
  cel_json:
    prober: http
    http: {fail_if_body_json_not_matches_cel: "has(body.openapi)"}
  mssql:
    prober: sql
    sql:
      driver: sqlalchemy
      dsn: "mssql+pymssql://{host}:{port}/master"
      default_port: 1433
      collectors: [{collector_name: up, metrics: [{metric_name: up, type: gauge, help: Up., values: [up],
                                                   query: "SELECT 1 AS up"}]}]
"""
# The import names of every optional library: none of them is in the core install.
OPTIONAL_LIBRARIES = ("psycopg", "aiomysql", "pymysql", "sqlalchemy", "grpc_health", "grpc", "aioquic", "celpy")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that is not the checkout, with a config of modules that need extras."""
    path = tmp_path_factory.mktemp("run")
    assert REPO not in path.parents
    (path / "extras.yml").write_text(EXTRA_MODULES)
    return path


@pytest.fixture(scope="module")
def exporter(installed: Path, workdir: Path) -> Iterator[ExporterProcess]:
    """The installed exporter, started outside the checkout, on the shipped modules and the extras' ones."""
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir), "XDG_CACHE_HOME": str(workdir / "cache")}
    shipped = installed / "share" / "probe-exporter" / "modules" / "*.yml"
    with ExporterProcess([str(installed / "bin" / "probe-exporter"), "--log.format=json",
                          f"--config.file={shipped}", "--config.file=extras.yml"], cwd=workdir, env=env) as process:
        process.wait_listening()
        yield process


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and values.get("href"):
            self.assets.append(values["href"] or "")
        elif tag in ("script", "img") and values.get("src"):
            self.assets.append(values["src"] or "")
        elif tag == "a" and values.get("href"):
            self.anchors.append(values["href"] or "")


def test_the_wheel_carries_every_data_file(wheel: Path) -> None:
    package_files = {path.relative_to(REPO).as_posix() for path in (REPO / "probe_exporter").rglob("*")
                     if path.is_file() and "__pycache__" not in path.parts and path.suffix not in _NOT_DATA_SUFFIXES}
    module_files = {path.relative_to(REPO).as_posix() for path in (REPO / "modules").rglob("*") if path.is_file()}
    assert package_files and module_files
    names = set(zipfile.ZipFile(wheel).namelist())
    data_prefix = "-".join(wheel.name.split("-")[:2]) + ".data/data/share/probe-exporter/"
    assert sorted(package_files - names) == []
    assert sorted(name for name in module_files if data_prefix + name not in names) == []


def test_the_wheel_carries_the_license(wheel: Path) -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in license_text
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [name for name in archive.namelist() if ".dist-info/" in name and name.endswith("LICENSE")]
        assert archive.read(name).decode() == license_text
        metadata = archive.read(name.split(".dist-info/")[0] + ".dist-info/METADATA").decode()
    assert "Apache-2.0" in metadata


def test_the_installed_wheel_reads_and_renders_varbinds_in_c(installed: Path) -> None:
    """The wheel is built with the optional C parts of the SNMP prober where a compiler is (as here)."""
    paths = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "from probe_exporter.probers.snmp import ber, render; "
                            "print(ber.varbind_reader(), render.pdu_renderer())"],
                           check=True, capture_output=True, text=True, cwd=installed).stdout.split()
    if paths != ["c", "c"] and shutil.which("cc") is None and not os.environ.get("CI"):
        pytest.skip("no C compiler here: the wheel reads and renders varbinds in Python (CI machines have one)")
    assert paths == ["c", "c"]


def test_the_installed_exporter_runs_outside_the_checkout(installed: Path) -> None:
    location = subprocess.run([str(installed / "bin" / "python"), "-c",
                               "import probe_exporter; print(probe_exporter.__file__)"],
                              check=True, capture_output=True, text=True, cwd=installed).stdout.strip()
    assert Path(location).is_relative_to(installed)


def test_landing_page_and_every_asset_it_links_answer_200(exporter: ExporterProcess) -> None:
    page = httpx.get(exporter.base_url + "/", timeout=10)
    assert page.status_code == 200
    links = _Links()
    links.feed(page.text)
    assert links.assets, "the landing page links no stylesheet"
    same_origin = [href for href in links.assets + links.anchors if not urllib.parse.urlsplit(href).netloc]
    for href in same_origin:
        response = httpx.get(urllib.parse.urljoin(exporter.base_url + "/", href), timeout=10)
        assert response.status_code == 200, (href, response.status_code, response.text[:200])
    css = httpx.get(urllib.parse.urljoin(exporter.base_url + "/", links.assets[0]), timeout=10)
    assert css.headers["content-type"].startswith("text/css") and len(css.content) > 100


def test_the_shipped_sqlite_demo_succeeds(exporter: ExporterProcess) -> None:
    response = httpx.get(exporter.base_url + "/probe", params={"module": "sqlite_demo", "target": "demo"},
                         timeout=10)
    assert response.status_code == 200
    assert "\nprobe_success 1\n" in response.text, response.text[-2000:]
    assert 'demo_jobs{queue="mail",state="ready"} 3' in response.text


def test_the_installed_exporter_logs_only_json(exporter: ExporterProcess) -> None:
    httpx.get(exporter.base_url + "/static/no-such-file.css", timeout=10)
    assert exporter.lines and non_json_lines(exporter.lines) == []


def test_startup_warns_once_per_module_whose_extra_is_missing(exporter: ExporterProcess) -> None:
    records = [json.loads(line) for line in exporter.lines]
    warned = {str(record["module"]): record["install"] for record in records
              if record["msg"].startswith("Module needs an optional extra")}
    assert warned == {"grpc": "probe-exporter[grpc]", "grpc_plain": "probe-exporter[grpc]",
                      "postgresql": "probe-exporter[postgresql]", "mariadb": "probe-exporter[mysql]",
                      "http3_2xx": "probe-exporter[http3]", "cel_json": "probe-exporter[cel]",
                      "mssql": "probe-exporter[sqlalchemy]"}
    assert [record for record in records if record["level"] in ("warn", "error") and
            not record["msg"].startswith("Module needs an optional extra")] == []


def test_the_core_install_has_no_optional_library(installed: Path) -> None:
    script = ("import importlib.util, sys; names = sys.argv[1:]; "
              "print(' '.join(n for n in names if importlib.util.find_spec(n) is not None))")
    found = subprocess.run([str(installed / "bin" / "python"), "-c", script, *OPTIONAL_LIBRARIES], check=True,
                           capture_output=True, text=True).stdout.split()
    assert found == []


def _failure_reason(exporter: ExporterProcess, module: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in list(exporter.lines):
            record = json.loads(line)
            if record["msg"] == "Probe failed" and record.get("module") == module:
                return str(record["reason"])
        time.sleep(0.05)
    raise AssertionError(f"no failure logged for {module}")


@pytest.mark.parametrize(("module", "target", "extra"), [
    ("grpc_plain", "127.0.0.1:1", "grpc"),
    ("postgresql", "127.0.0.1:5432", "postgresql"),
    ("mariadb", "127.0.0.1:3306", "mysql"),
    ("mssql", "127.0.0.1", "sqlalchemy"),
    ("http3_2xx", "https://127.0.0.1:1/", "http3"),
    ("cel_json", "/openapi.json", "cel"),
])
def test_a_module_whose_extra_is_missing_fails_with_the_install_hint(exporter: ExporterProcess, module: str,
                                                                     target: str, extra: str) -> None:
    if target.startswith("/"):
        target = exporter.base_url + target  # the exporter's own JSON document
    response = httpx.get(exporter.base_url + "/probe", params={"module": module, "target": target}, timeout=15)
    assert response.status_code == 200
    assert "\nprobe_success 0\n" in response.text
    assert f"install probe-exporter[{extra}]" in _failure_reason(exporter, module)


def test_config_check_warns_about_each_missing_extra(installed: Path, workdir: Path) -> None:
    result = subprocess.run([str(installed / "bin" / "probe-exporter"), "--config.check",
                             "--config.file=extras.yml"], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK: 3 modules" in result.stdout
    warned = {line.rsplit("[", 1)[1].rstrip("]") for line in result.stderr.splitlines()
              if "install probe-exporter[" in line}
    assert warned == {"http3", "cel", "sqlalchemy"}, result.stderr
