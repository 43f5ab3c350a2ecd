"""Every flag is defined once, in probe_exporter.settings: the CLI and the docs follow it."""

from __future__ import annotations

import dataclasses

import pytest

from probe_exporter.cli import build_parser, build_probe_parser
from probe_exporter.settings import PROBE, SERVE, Flag, Settings, from_args
from tests.support.paths import REPO

FLAGS: list[tuple[str, Flag]] = [(f.name, f.metadata["flag"]) for f in dataclasses.fields(Settings)
                                 if "flag" in f.metadata]


def test_defaults_of_the_command_line_are_the_settings_defaults() -> None:
    assert from_args(build_parser().parse_args([])) == Settings()


@pytest.mark.parametrize(("field", "spec"), FLAGS, ids=[spec.name for _, spec in FLAGS])
def test_every_flag_is_on_its_commands_help_and_in_the_docs(field: str, spec: Flag) -> None:
    helps = {SERVE: build_parser().format_help(), PROBE: build_probe_parser().format_help()}
    for command, text in helps.items():
        assert (spec.name in text) == (command in spec.commands), (command, spec.name)
    assert f"`{spec.name}" in (REPO / "docs" / "operations.md").read_text(), f"{spec.name} is not documented"


def test_a_flag_sets_its_setting() -> None:
    settings = from_args(build_parser().parse_args(["--web.listen-address", "127.0.0.1:1", "--web.listen-address",
                                                    ":2", "--history.limit", "7", "--timeout-offset", "1.5"]))
    assert settings.listen_addresses == ["127.0.0.1:1", ":2"]  # the user's list replaces the default
    assert (settings.history_limit, settings.timeout_offset) == (7, 1.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--history.limit", "-1"])
