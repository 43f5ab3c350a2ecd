"""Targets: addresses only, checked against the module's allowlist before anything connects."""

from __future__ import annotations

from typing import Any

import pytest

from probe_exporter.config.sql import SQLModule
from probe_exporter.probers.base import BadRequest
from probe_exporter.probers.sql.spec import build_spec, scrub
from probe_exporter.probers.sql.target import resolve_target


def module(**fields: Any) -> SQLModule:
    return SQLModule.model_validate({"driver": "postgresql", **fields})


ALLOW = {"auth": {"username": "probe", "password": "pw-secret"},
         "target_allow": ["10.0.0.0/8", "127.0.0.1", "::1/128", "*.db.example"]}


@pytest.mark.parametrize(("target", "host", "port"), [
    ("10.1.2.3", "10.1.2.3", 5432), ("10.1.2.3:6432", "10.1.2.3", 6432), ("[::1]:5433", "::1", 5433),
    ("::1", "::1", 5432), ("pg1.db.example", "pg1.db.example", 5432), ("PG1.DB.example:1", "PG1.DB.example", 1),
])
async def test_allowed_targets(target: str, host: str, port: int) -> None:
    endpoint = await resolve_target(target, module(**ALLOW))
    assert (endpoint.host, endpoint.port) == (host, port)


@pytest.mark.parametrize("target", [
    "192.168.1.1", "11.0.0.1:5432", "evil.example", "db.example", "[::2]:5432",
])
async def test_targets_outside_the_allowlist_are_400(target: str) -> None:
    with pytest.raises(BadRequest, match="not allowed"):
        await resolve_target(target, module(**ALLOW))


@pytest.mark.parametrize("target", [
    "user:pw@10.0.0.1", "10.0.0.1/db", "10.0.0.1?sslmode=disable", "10.0.0.1,evil", "10.0.0.1 x",
    "10.0.0.1:99999", "10.0.0.1:abc", "", "host=evil", "[::1", "1:2:3",
])
async def test_malformed_targets_are_400(target: str) -> None:
    with pytest.raises(BadRequest):
        await resolve_target(target, module(**ALLOW))


async def test_a_name_is_allowed_when_all_its_addresses_are_and_the_checked_address_is_dialled() -> None:
    endpoint = await resolve_target("localhost", module(auth={"username": "u"}, target_allow=["127.0.0.0/8", "::1"]))
    assert endpoint.host == "localhost" and endpoint.connect_address in ("127.0.0.1", "::1")
    with pytest.raises(BadRequest):
        await resolve_target("localhost", module(auth={"username": "u"}, target_allow=["10.0.0.0/8"]))


async def test_without_credentials_or_allowlist_any_host_is_accepted() -> None:
    assert (await resolve_target("anything.example:1234", module())).port == 1234


async def test_aliases_and_sqlite_paths(tmp_path: Any) -> None:
    sql = module(targets={"primary": {"host": "10.9.9.9", "port": 6000, "database": "billing"}}, **ALLOW)
    endpoint = await resolve_target("primary", sql)
    assert (endpoint.host, endpoint.port, endpoint.database) == ("10.9.9.9", 6000, "billing")
    lite = SQLModule.model_validate({"driver": "sqlite", "target_allow_paths": [f"{tmp_path}/*.db"]})
    assert (await resolve_target(f"{tmp_path}/a.db", lite)).path == f"{tmp_path}/a.db"
    for bad in (f"{tmp_path}/../etc/passwd.db", "/etc/passwd", f"{tmp_path}/a.sqlite"):
        with pytest.raises(BadRequest):
            await resolve_target(bad, lite)


async def test_spec_display_and_errors_never_show_the_password(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Any) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("file-secret-1\n")
    sql = module(dsn="postgresql://{host}:{port}/app?sslmode=disable", auth={"username": "probe",
                 "password_file": str(secret_file)}, target_allow=["10.0.0.0/8"])
    spec = build_spec(sql, await resolve_target("10.0.0.5", sql))
    assert spec.password is not None and spec.password.reveal() == "file-secret-1"
    assert spec.display == "postgresql://probe:<secret>@10.0.0.5:5432/app" and spec.options == {"sslmode": "disable"}
    assert "file-secret-1" not in repr(spec)
    assert scrub("FATAL: bad password file-secret-1", spec.secrets()) == "FATAL: bad password <secret>"
    # *_file is re-read on each probe: rotation needs no reload
    secret_file.write_text("file-secret-2\n")
    assert build_spec(sql, await resolve_target("10.0.0.5", sql)).password.reveal() == "file-secret-2"  # type: ignore[union-attr]
    monkeypatch.setenv("PG_PW_TEST", "env-secret")
    env_sql = module(auth={"username": "probe", "password_env": "PG_PW_TEST"}, target_allow=["10.0.0.0/8"])
    assert build_spec(env_sql, await resolve_target("10.0.0.5", env_sql)).password.reveal() == "env-secret"  # type: ignore[union-attr]


async def test_dsn_parameter_and_option_secrets_are_scrubbed_in_every_form() -> None:
    sql = module(dsn="postgresql://u:p%40ss@{host}/app?sslpassword=q-secret", options={"password": "o secret"},
                 target_allow=["10.0.0.0/8"])
    spec = build_spec(sql, await resolve_target("10.0.0.5", sql))
    assert sorted(spec.secrets()) == ["o secret", "p@ss", "q-secret"]
    message = "failed for postgresql://u:p%40ss@10.0.0.5/app (p@ss) sslpassword=q-secret password=o+secret o%20secret"
    assert scrub(message, spec.secrets()) == ("failed for postgresql://u:<secret>@10.0.0.5/app (<secret>) "
                                              "sslpassword=<secret> password=<secret> <secret>")


async def test_sqlalchemy_display_masks_password_parameters() -> None:
    sql = module(driver="sqlalchemy", dsn="mssql+pymssql://{host}/db?password=qp-1&timeout=3",
                 target_allow=["10.0.0.0/8"])
    spec = build_spec(sql, await resolve_target("10.0.0.5:1433", sql))
    assert spec.display == "mssql+pymssql://10.0.0.5/db?password=<secret>&timeout=3"


async def test_target_allow_is_the_allowed_targets_model() -> None:
    """The same entries as a module's allowed_targets (host globs with a port included), plus SQL's
    resolution of names into allowed networks."""
    from probe_exporter.limits import TargetPolicy

    entries = ["10.0.0.0/8", "*.db.example:6432"]
    sql = module(auth={"username": "u"}, target_allow=entries)
    assert (await resolve_target("pg.db.example:6432", sql)).port == 6432
    with pytest.raises(BadRequest, match="not allowed"):
        await resolve_target("pg.db.example:5432", sql)
    for target, allowed in (("10.1.1.1:5432", True), ("pg.db.example:6432", True), ("pg.db.example:5432", False)):
        assert TargetPolicy(entries).allows(target, "sql") is allowed
    with pytest.raises(ValueError, match=r"invalid CIDR '10.0.0.0/33' in target_allow"):
        module(target_allow=["10.0.0.0/33"])
