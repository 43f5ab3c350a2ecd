"""Optional extras: which ImportError means "install the extra", and which extras a module needs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from probe_exporter import extras
from probe_exporter.config import load_config
from tests.support.paths import REPO


def test_a_missing_module_of_the_extra_becomes_missing_extra() -> None:
    with pytest.raises(extras.MissingExtra, match=r"^install probe-exporter\[grpc\]") as caught:
        with extras.required("grpc"):
            raise ModuleNotFoundError("No module named 'google'", name="google")  # google.protobuf's parent
    assert caught.value.extra == "grpc"


@pytest.mark.parametrize("error", [
    ModuleNotFoundError("No module named 'six'", name="six"),      # a dependency of a dependency: a broken install
    ImportError("cannot import name 'connect' from 'aioquic'", name="aioquic"),  # another version's API
])
def test_other_import_errors_stay_what_they_are(error: ImportError) -> None:
    with pytest.raises(ImportError) as caught:
        with extras.required("http3"):
            raise error
    assert caught.value is error


def test_every_extra_is_installed_in_the_test_environment() -> None:
    # `.[test]` depends on `.[all]`: CI exercises every prober and driver.
    assert [extra for extra in extras.EXTRA_MODULES if not extras.installed(extra)] == []


@pytest.mark.parametrize(("raw", "needed"), [
    ({"prober": "grpc"}, ["grpc"]),
    ({"prober": "http", "http": {"enable_http3": True, "enable_http2": False,
                                 "fail_if_body_json_matches_cel": "body.x == 1"}}, ["http3", "cel"]),
    ({"prober": "tcp"}, []),
])
def test_module_extras(tmp_path: Path, raw: dict[str, object], needed: list[str]) -> None:
    path = tmp_path / "modules.yml"
    path.write_text(json.dumps({"modules": {"m": raw}}))  # JSON is YAML
    assert load_config([str(path)]).modules["m"].extras_needed() == needed


def test_all_is_every_other_extra_and_each_has_its_import_names() -> None:
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    features = set(optional) - {"all", "test"}
    assert features == set(extras.EXTRA_MODULES)
    (everything,) = optional["all"]
    assert everything == f"probe-exporter[{','.join(sorted(features, key=list(optional).index))}]"
    assert "probe-exporter[all]" in optional["test"]
