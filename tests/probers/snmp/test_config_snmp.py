"""Loading snmp_exporter's snmp.yml: the real generated file, strictness, defaults, both formats."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from probe_exporter.config import ConfigError, load_config
from probe_exporter.config.render import config_as_yaml
from probe_exporter.config.snmp import SnmpAuth, SnmpModule


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_generated_snmp_yml_loads_unmodified(shared_snmp_yml: Path) -> None:
    start = time.perf_counter()
    config = load_config([str(shared_snmp_yml)])
    elapsed = time.perf_counter() - start
    snmp_modules = {name for name, module in config.modules.items() if module.prober == "snmp"}
    assert len(snmp_modules) == 53
    assert sorted(config.snmp_auths) == ["public_v1", "public_v2"]
    if_mib = config.modules["if_mib"].snmp
    assert isinstance(if_mib, SnmpModule)
    assert if_mib.walk == ["1.3.6.1.2.1.2", "1.3.6.1.2.1.31.1.1"]
    assert (if_mib.max_repetitions, if_mib.retries, if_mib.timeout) == (25, 3, 5.0)
    assert elapsed < 30  # a sanity bound only; bench/snmp measures it (~1.2 s, YAML parse ~1.05 s)


def test_auth_defaults_and_secrets(tmp_path: Path) -> None:
    config = load_config([_write(tmp_path, "a.yml", "auths:\n  x: {}\n  v3:\n    version: 3\n"
                                 "    username: u\n    security_level: authPriv\n    password: pw-secret\n"
                                 "    priv_password: priv-secret\nmodules: {}\n")])
    auth = config.snmp_auths["x"]
    assert isinstance(auth, SnmpAuth)
    assert auth.community.reveal() == "public"
    assert (auth.version, auth.security_level, auth.auth_protocol, auth.priv_protocol) == (2, "noAuthNoPriv", "MD5",
                                                                                           "DES")
    text = config_as_yaml(config)
    assert "pw-secret" not in text and "priv-secret" not in text and "public" not in text
    assert "<secret>" in text


@pytest.mark.parametrize(("auth", "message"), [
    ("version: 4", "SNMP version must be 1, 2 or 3. Got: 4"),
    ("{version: 3}", "auth username is missing, required for SNMPv3"),
    ("{version: 3, username: u, security_level: authNoPriv}", "auth password is missing"),
    ("{version: 3, username: u, security_level: authPriv, password: p}", "priv password is missing"),
    ("{version: 3, username: u, security_level: bogus}", "security level must be one of"),
    ("{version: 3, username: u, security_level: authNoPriv, password: p, auth_protocol: SHA1}",
     "auth protocol must be"),
    ("{version: 3, username: u, security_level: authPriv, password: p, priv_password: q, priv_protocol: 3DES}",
     "priv protocol must be"),
    ("{community: c, bogus: 1}", "field bogus not found"),
])
def test_auth_validation(tmp_path: Path, auth: str, message: str) -> None:
    body = f"auths:\n  a: {auth}\n" if not auth.startswith("version") else f"auths:\n  a:\n    {auth}\n"
    with pytest.raises(ConfigError, match=message) as err:
        load_config([_write(tmp_path, "a.yml", body + "modules: {}\n")])
    assert ":2:" in str(err.value) or ":3:" in str(err.value)


def test_v2_accepts_any_security_level(tmp_path: Path) -> None:
    config = load_config([_write(tmp_path, "a.yml", "auths:\n  a: {security_level: SomethingReadOnly}\n")])
    assert config.snmp_auths["a"].security_level == "SomethingReadOnly"


@pytest.mark.parametrize(("metric", "message"), [
    ("{name: m, oid: 1.2, type: IpAddr}", 'unknown metric type "IpAddr"'),
    ("{name: m, oid: 1.2, type: gauge, indexes: [{labelname: i, type: Float}]}", 'invalid index type "Float"'),
    ("{name: m, oid: 1.2, type: gauge, unknown_key: 1}", "field unknown_key not found"),
    ("{name: m, oid: 1.2}", "field type is required"),
    ("{name: m, oid: 1.2, type: DisplayString, regex_extracts: {x: [{regex: '('}]}}", "regular expression"),
])
def test_module_validation(tmp_path: Path, metric: str, message: str) -> None:
    text = f"modules:\n  m:\n    walk: [1.2]\n    metrics:\n    - {metric}\n"
    with pytest.raises(ConfigError, match=message) as err:
        load_config([_write(tmp_path, "m.yml", text)])
    assert "m.yml:5" in str(err.value)


def test_regex_extract_defaults_and_anchoring(tmp_path: Path) -> None:
    text = ("modules:\n  m:\n    metrics:\n    - name: m\n      oid: 1.2\n      type: DisplayString\n"
            "      regex_extracts:\n        X: [{regex: '4(2)'}]\n")
    module = load_config([_write(tmp_path, "m.yml", text)]).modules["m"].snmp
    rule = module.metrics[0].regex_extracts["X"][0]
    assert rule.value == "$1"
    assert rule.regex.compiled.search("42") is not None
    assert rule.regex.compiled.search("x42") is None  # whole-string match, as ^(?:...)$


def test_several_files_and_globs_merge(tmp_path: Path) -> None:
    _write(tmp_path, "1-auths.yml", "auths:\n  a: {community: one}\n  b: {community: two}\n")
    _write(tmp_path, "2-more.yml", "auths:\n  b: {community: three}\nmodules:\n  m: {walk: [1.2], metrics: []}\n")
    config = load_config([str(tmp_path / "*.yml")])
    assert config.snmp_auths["a"].community.reveal() == "one"
    assert config.snmp_auths["b"].community.reveal() == "three"  # a later file's auth wins, as upstream
    assert config.modules["m"].prober == "snmp"


def test_duplicate_module_across_files_is_an_error(tmp_path: Path) -> None:
    first = _write(tmp_path, "1.yml", "modules:\n  m: {walk: [1.2]}\n")
    second = _write(tmp_path, "2.yml", "modules:\n  m: {walk: [1.3]}\n")
    with pytest.raises(ConfigError, match="already defined"):
        load_config([first, second])


def test_pre_023_format_with_auth_inside_the_module(tmp_path: Path) -> None:
    text = ("if_mib:\n  version: 1\n  auth:\n    community: old-secret\n  walk: [1.3.6.1.2.1.2]\n"
            "  timeout: 2s\n  metrics:\n  - {name: ifNumber, oid: 1.3.6.1.2.1.2.1, type: gauge, help: n}\n"
            "v3mod:\n  version: 3\n  auth: {username: u, security_level: authNoPriv, password: p, auth_protocol: SHA}\n"
            "  walk: [1.2]\n")
    config = load_config([_write(tmp_path, "old.yml", text)])
    module = config.modules["if_mib"].snmp
    assert module.auth is not None and module.auth.version == 1
    assert module.auth.community.reveal() == "old-secret"
    assert module.timeout == 2.0
    assert config.modules["v3mod"].snmp.auth.version == 3
    assert "old-secret" not in config_as_yaml(config)


def test_pre_023_format_errors_point_at_the_line(tmp_path: Path) -> None:
    text = "if_mib:\n  version: 3\n  auth: {community: x}\n  walk: [1.2]\n"
    with pytest.raises(ConfigError, match="username is missing") as err:
        load_config([_write(tmp_path, "old.yml", text)])
    assert "old.yml:1" in str(err.value) or "old.yml:2" in str(err.value)


def test_prober_snmp_module_with_snmp_block(tmp_path: Path) -> None:
    text = ("modules:\n  sw:\n    prober: snmp\n    timeout: 7s\n    snmp:\n      walk: [1.3.6.1.2.1.1]\n"
            "      auth: {community: c}\n      metrics:\n"
            "      - {name: sysName, oid: 1.3.6.1.2.1.1.5, type: DisplayString}\n")
    module = load_config([_write(tmp_path, "s.yml", text)]).modules["sw"]
    assert module.prober == "snmp" and module.timeout == 7.0
    assert module.snmp.metrics[0].name == "sysName"
    assert module.snmp.auth.community.reveal() == "c"


def test_shipped_modules_load() -> None:
    repo = Path(__file__).resolve().parents[3]
    config = load_config([str(repo / "modules" / "snmp.yml")])
    assert {"if_mib", "system", "hrStorage"} <= set(config.modules)
    assert sorted(config.snmp_auths) == ["public_v1", "public_v2"]


def test_environment_expansion_behind_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "a.yml", "auths:\n  a: {version: 3, username: '${SNMP_USER}', security_level: authNoPriv,"
                                     " password: '$SNMP_PASS', auth_protocol: SHA}\n")
    monkeypatch.setenv("SNMP_USER", "monitor")
    monkeypatch.setenv("SNMP_PASS", "")
    assert load_config([path]).snmp_auths["a"].username == "${SNMP_USER}"  # off by default
    with pytest.raises(ConfigError, match="password is missing"):  # empty counts as set
        load_config([path], expand_environment_variables=True)
    monkeypatch.setenv("SNMP_PASS", "s3cret")
    auth = load_config([path], expand_environment_variables=True).snmp_auths["a"]
    assert (auth.username, auth.password.reveal()) == ("monitor", "s3cret")
    monkeypatch.delenv("SNMP_USER")
    with pytest.raises(ConfigError, match="'SNMP_USER' is not set"):
        load_config([path], expand_environment_variables=True)


def test_config_page_follows_a_reload(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.yml", "modules:\n  one: {walk: [1.3.6.1.2.1.1]}\n")
    first = config_as_yaml(load_config([path]))
    _write(tmp_path, "a.yml", "modules:\n  two: {walk: [1.3.6.1.2.1.1]}\n")
    second = config_as_yaml(load_config([path]))
    assert "one:" in first and "two:" not in first
    assert "two:" in second and "one:" not in second
