"""Property test of /probe's parameters: any query gives a 200 or a one-line 4xx, never a 5xx or a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "modules.yml"
    path.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 1s\n"
                    "    http: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}\n")
    with TestClient(create_app(Exporter(Settings(config_files=[str(path)])))) as test_client:
        yield test_client


_TARGETS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["http://127.0.0.1:9/", "127.0.0.1:1", "http://[::1", "http://%zz", "https://", "ftp://x",
                     "http://127.0.0.1:99999/", "http://user:pw@127.0.0.1:9/", "http://\x00/", "%253A"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(target=_TARGETS, module=st.one_of(st.none(), st.just("http_2xx"), st.text(max_size=10)),
       extra=st.dictionaries(st.sampled_from(["debug", "hostname", "auth"]), st.text(max_size=10), max_size=2))
def test_probe_never_errors(client: TestClient, target: str, module: str | None, extra: dict[str, str]) -> None:
    params = {"target": target, **extra}
    if module is not None:
        params["module"] = module
    response = client.get("/probe", params=params)
    assert response.status_code in (200, 400), response.text
    assert "Traceback" not in response.text
    if response.status_code == 400:
        assert response.text.count("\n") == 1
