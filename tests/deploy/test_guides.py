"""The install guides in docs/deployment.md, followed literally: every command is rendered into argv
lists, and every file, module, image, flag and Kubernetes object they name must exist."""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from probe_exporter.cli import build_parser
from probe_exporter.config import load_config
from tests.support.deploy_tools import DEPLOY, REPO

GUIDE = REPO / "docs" / "deployment.md"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
WHEEL = f"dist/probe_exporter-{VERSION}-py3-none-any.whl"
# Paths in the commands that name something in the checkout (the commands run from its top directory).
REPO_PATHS = ("deploy/", "modules/", "Dockerfile", "dist/", "prometheus.example.yml")
SECTIONS = ("Container image", "systemd", "Kubernetes")
SEPARATORS = {"&&", "||", "|", ";", "&"}


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", GUIDE.read_text(), flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _commands(section: str) -> list[list[str]]:
    """Each shell command of the section's ```sh blocks as an argv (continuations joined, comments and
    `&&`/`|` chains split)."""
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", _sections()[section], flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            current: list[str] = []
            for token in lexer:
                if token in SEPARATORS:
                    commands.append(current)
                    current = []
                else:
                    current.append(token)
            commands.append(current)
    return [command for command in commands if command]


def _shipped_modules() -> set[str]:
    return set(load_config([str(REPO / "modules" / "*.yml")]).modules)


def _configmap_modules(tmp_path: Path) -> set[str]:
    (configmap,) = [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
                    if doc and doc["kind"] == "ConfigMap"]
    for key, text in configmap["data"].items():
        (tmp_path / key).write_text(text)
    return set(load_config([str(tmp_path / "*.yml")]).modules)


def _manifests() -> list[dict[str, object]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc and "metadata" in doc]
    return docs


def _deployment_image() -> str:
    (deployment,) = [doc for doc in _manifests() if doc["kind"] == "Deployment"]
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])  # type: ignore[index]


def test_the_guide_has_the_three_sections_with_commands() -> None:
    for section in SECTIONS:
        assert _commands(section), section


@pytest.mark.parametrize("section", SECTIONS)
def test_every_checkout_path_a_command_names_exists(section: str) -> None:
    for command in _commands(section):
        for token in command:
            path = token.split("=", 1)[-1].split("[", 1)[0]  # --from-file=KEY=PATH, WHEEL[all]
            if path == WHEEL:  # built by an earlier step of the same guide
                assert any(Path(other[0]).name == "pip" and other[1] == "wheel" and "dist" in other
                           for other in _commands(section)), command
                continue
            if path.startswith(REPO_PATHS):
                exists = glob.glob(path, root_dir=REPO) if glob.has_magic(path) else (REPO / path).exists()
                assert exists, f"{section}: {' '.join(command)}: {path} does not exist"


def test_every_link_in_the_guide_exists() -> None:
    links = re.findall(r"\]\((\.\./[^)#]+)\)", GUIDE.read_text())
    assert links
    for link in links:
        assert (GUIDE.parent / link).resolve().exists(), link


@pytest.mark.parametrize("section", SECTIONS)
def test_every_module_a_command_probes_exists(section: str, tmp_path: Path) -> None:
    available = _configmap_modules(tmp_path) if section == "Kubernetes" else _shipped_modules()
    named = [match for command in _commands(section) for token in command
             for match in re.findall(r"[?&]module=([\w,]+)", token)]
    if section != "systemd":
        assert named, section
    for modules in named:
        assert set(modules.split(",")) <= available, (section, modules)


@pytest.mark.parametrize("section", ["Container image", "Kubernetes"])
def test_the_image_is_built_with_the_tag_the_commands_and_manifests_use(section: str) -> None:
    commands = _commands(section)
    image = f"probe-exporter:{VERSION}"
    assert ["docker", "build", "-t", image, "."] in commands
    assert _deployment_image() == image
    for command in commands:
        for token in command:
            if re.fullmatch(r"(?:[\w.-]+/)?probe-exporter:[\w.-]+", token):
                assert token.endswith(f"probe-exporter:{VERSION}"), (section, command)


def test_kubernetes_commands_name_objects_the_manifests_define() -> None:
    manifests = _manifests()
    names = {(str(doc["kind"]).lower(), doc["metadata"]["name"]) for doc in manifests}  # type: ignore[index]
    namespaces = {doc["metadata"]["namespace"] for doc in manifests}  # type: ignore[index]
    commands = [command for command in _commands("Kubernetes") if command[0] == "kubectl"]
    assert ["kubectl", "apply", "-k", "deploy/kubernetes/"] in commands
    for command in commands:
        if "-n" in command:
            assert command[command.index("-n") + 1] in namespaces, command
        for token in command:
            kind, slash, name = token.partition("/")
            if slash and kind in ("deployment", "service") and "." not in name:
                assert (kind, name) in names, command
        if command[1:3] == ["create", "namespace"]:
            assert command[3] in namespaces
        if "configmap" in command and "create" in command:
            assert ("configmap", command[command.index("configmap") + 1]) in names, command
        if "set" in command and "image" in command:
            container = command[-1].split("=", 1)[0]
            assert container == "probe-exporter", command


def test_docker_run_arguments_are_exporter_flags() -> None:
    runs = [command for command in _commands("Container image") if command[:2] == ["docker", "run"]]
    assert runs
    for command in runs:
        image_index = next(index for index, token in enumerate(command) if token.startswith("probe-exporter:"))
        args = build_parser().parse_args(command[image_index + 1:])
        published = {token.split(":")[-1] for index, token in enumerate(command) if command[index - 1] == "-p"}
        listen = (args.listen_addresses or [":10115"])[0].rsplit(":", 1)[1]
        assert listen in published, command


def test_systemd_guide_installs_what_the_unit_runs() -> None:
    unit = (DEPLOY / "systemd" / "probe-exporter.service").read_text()
    commands = _commands("systemd")
    (venv,) = [command[3] for command in commands if command[:3] == ["python3", "-m", "venv"]]
    exec_start = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    assert exec_start[0] == f"{venv}/bin/probe-exporter"
    assert [f"{venv}/bin/pip", "wheel", "--no-deps", "--wheel-dir", "dist", "."] in commands
    assert [f"{venv}/bin/pip", "install", f"{WHEEL}[all]"] in commands
    assert re.search(r"^LimitNOFILE=\d+$", unit, re.M)
    assert ["cp", "deploy/systemd/probe-exporter.service", "/etc/systemd/system/"] in commands
    pattern = next(arg.split("=", 1)[1] for arg in exec_start if arg.startswith("--config.file="))
    (copy,) = [command for command in commands if command[0] == "cp" and command[-2].startswith("modules")]
    assert pattern == copy[-1].rstrip("/") + "/*.yml"


def test_the_systemd_copy_step_gives_a_config_that_runs_the_sqlite_demo(tmp_path: Path) -> None:
    """The guide's `cp` into a stand-in for /etc/probe_exporter, then the demo probed from there, outside
    the checkout: sql.yml finds its collector file and seed script only if the whole tree was copied."""
    (copy,) = [command for command in _commands("systemd") if command[0] == "cp" and command[-2].startswith("modules")]
    etc = tmp_path / "etc"
    etc.mkdir()
    # As the shell would run it: globs expanded in the checkout.
    argv = [match for token in copy[:-1]
            for match in (sorted(glob.glob(token, root_dir=REPO)) if glob.has_magic(token) else [token])]
    subprocess.run([*argv, f"{etc}/"], cwd=REPO, check=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "probe_exporter", "probe", "--module", "sqlite_demo", "--target",
                             "demo", f"--config.file={etc}/*.yml"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "\nprobe_success 1\n" in result.stdout
