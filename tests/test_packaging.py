"""What cannot be built here (the Docker image) checked as far as it can be: what the
Dockerfile copies exists, its command serves from its environment as the README says, its
health check asks for readiness; the build context leaves out the venv and data; the
systemd unit example runs commands that exist."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from tests.upstream_services import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction (continuation lines joined)."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in instructions("ENV"):
        for item in shlex.split(line):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def test_what_the_dockerfile_copies_exists() -> None:
    for line in instructions("COPY"):
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source


def test_the_build_context_leaves_out_the_venv_and_data() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for heavy in (".venv", "data", ".git", "tests"):
        assert heavy in ignored, heavy
    included = {line[1:] for line in ignored if line.startswith("!")}
    copied = {source for line in instructions("COPY") for source in line.split()[:-1]}
    for source in copied - included:
        parents = {source, *(p.as_posix() for p in Path(source).parents)}
        assert not parents & set(ignored), source


def test_the_image_command_serves_from_its_environment(tmp_path: Path) -> None:
    """ENTRYPOINT run here with the image's ENV (its address, port and data dir moved),
    credentials given as the README says; /-/ready, which HEALTHCHECK asks, answers 200."""
    command = json.loads(instructions("ENTRYPOINT")[0])
    assert command[:2] == ["s3facade", "serve"]
    env = image_env()
    assert env["S3FACADE_HOST"] == "0.0.0.0"
    [healthcheck] = instructions("HEALTHCHECK")
    assert "/-/ready" in healthcheck and "S3FACADE_PORT" in healthcheck
    port = free_port()
    env.update(
        S3FACADE_HOST="127.0.0.1",  # the tests listen on loopback only
        S3FACADE_PORT=str(port),
        S3FACADE_DATA_DIR=str(tmp_path / "data"),
        S3FACADE_ACCESS_KEY_ID="AKIDIMAGE0001",
        S3FACADE_SECRET_ACCESS_KEY="image-secret-0123",
    )
    executable = Path(sys.executable).with_name(command[0])
    process = subprocess.Popen(
        [str(executable), *command[1:]],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline, status = time.monotonic() + 30, 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200
        assert (tmp_path / "data").is_dir()
    finally:
        process.terminate()
        process.wait(30)


def test_the_systemd_unit_runs_commands_that_exist() -> None:
    unit = (ROOT / "packaging" / "s3facade.service").read_text()
    commands = re.findall(r"^Exec\w+=\S*/s3facade (.+)$", unit, re.MULTILINE)
    assert commands == ["config check", "serve"]
    for arguments in commands:
        help_text = subprocess.run(
            [sys.executable, "-m", "s3facade", *arguments.split(), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert help_text.returncode == 0, help_text.stderr


def test_the_license_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (project["license"], project["license-files"]) == ("Apache-2.0", ["LICENSE"])
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    metadata = importlib.metadata.metadata("s3facade")
    assert metadata["License-Expression"] == "Apache-2.0"  # what the installed wheel says


def test_the_distribution_installs_one_top_level_package() -> None:
    """`registry` and `backends` are generic names another distribution could also install:
    the folders stay at the top of the checkout but import as s3facade.registry and
    s3facade.backends (symlinks inside s3facade/, followed when the wheel is built)."""
    top_level = importlib.metadata.distribution("s3facade").read_text("top_level.txt")
    assert (top_level or "").split() == ["s3facade"]
    for layer in ("registry", "backends"):
        link = ROOT / "s3facade" / layer
        assert link.is_symlink() and link.resolve() == ROOT / layer
        spec = importlib.util.find_spec(f"s3facade.{layer}")
        assert spec is not None and spec.origin is not None
        assert Path(spec.origin).resolve() == ROOT / layer / "__init__.py"


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_imports_point_inward() -> None:
    """protocol -> registry -> backends' protocol types; never the reverse, and no module
    imports the folders by their old top-level names."""
    allowed = {
        "registry": ("s3facade.registry", "s3facade.backends"),
        "backends": ("s3facade.backends",),
    }
    for layer, inward in allowed.items():
        for path in (ROOT / layer).rglob("*.py"):
            ours = {m for m in imported_modules(path) if m.split(".")[0] == "s3facade"}
            outward = {m for m in ours if not m.startswith(inward)}
            assert not outward, f"{path.relative_to(ROOT)} imports {outward}"
    for folder in ("s3facade", "registry", "backends", "tests", "conformance", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            old = {m for m in imported_modules(path) if m.split(".")[0] in allowed}
            assert not old, f"{path.relative_to(ROOT)} imports {old} by the old name"
