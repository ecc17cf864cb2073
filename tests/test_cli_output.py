"""The command line as an operator meets it: --version, help on every option, `log` newest
first, and output that survives a pipe (full width, no traceback when the reader leaves)."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.cli import build_parser
from s3facade.command_list import COMMANDS
from s3facade.registry import ObjectSpec, Provenance, Registry
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer

WHO = Provenance("AKIDCLI", "127.0.0.1:1", "cli-test/1.0", "CLI")


def run_cli(*args: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3facade", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def test_version_and_help_on_every_option() -> None:
    shown = run_cli("--version")
    assert shown.returncode == 0 and shown.stdout.startswith("s3facade 0.")
    missing: list[str] = []

    leaves: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.help is None:
                missing.append(f"{path} {action.option_strings or action.dest}")
        if not groups:  # a command one runs: its help ends with examples of it
            leaves.append(path)
            epilog = parser.epilog or ""
            if not epilog.startswith("examples:\n  " + path):
                missing.append(f"{path}: no examples")

    walk(build_parser(), "s3facade")
    assert not missing, missing
    assert {"s3facade serve", "s3facade config check", "s3facade lifecycle run"} <= set(leaves)
    assert len(leaves) == len(COMMANDS) + 2  # the table, serve and config check


async def _body(n: int) -> AsyncIterator[bytes]:
    yield f"object {n}".encode()


def filled(data_dir: Path, objects: int) -> Path:
    async def fill() -> None:
        backends = BackendSet({"local": LocalCAS(data_dir / "blobs")}, "local")
        registry = Registry.open(data_dir, backends)
        await registry.create_bucket("cli-bucket", "us-east-1", WHO)
        for n in range(objects):
            key = f"a-rather-long-key-name-so-that-tables-are-wide/{n:05d}"
            await registry.put_object(
                "cli-bucket", key, _body(n), spec=ObjectSpec(), provenance=WHO
            )
        await registry.close()

    asyncio.run(fill())
    return data_dir


def test_log_is_newest_first_unless_asked(tmp_path: Path) -> None:
    data = filled(tmp_path / "data", 5)
    newest = json.loads(run_cli("log", "--data-dir", str(data), "--json", "--limit", "2").stdout)
    oldest = json.loads(
        run_cli("log", "--data-dir", str(data), "--json", "--limit", "2", "--oldest").stdout
    )
    newest_seqs = [e["seq"] for e in newest["events"]]
    oldest_seqs = [e["seq"] for e in oldest["events"]]
    assert newest_seqs == sorted(newest_seqs, reverse=True) and oldest_seqs == [1, 2]
    assert newest_seqs[0] > oldest_seqs[-1]


def test_rebuild_prints_words_not_a_python_dict(tmp_path: Path) -> None:
    data = filled(tmp_path / "data", 3)
    said = run_cli("rebuild", "--data-dir", str(data))
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("the views match the log: buckets 1, objects 3, versions 3")
    assert "{'" not in said.stdout
    forced = run_cli("rebuild", "--data-dir", str(data), "--force")
    assert forced.returncode == 2 and "--endpoint" in forced.stderr  # offline cannot swap


def test_piped_tables_are_not_cut_and_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    data = filled(tmp_path / "data", 300)
    table = run_cli("log", "--data-dir", str(data), "--limit", "5")
    assert table.returncode == 0, table.stderr
    assert "a-rather-long-key-name-so-that-tables-are-wide/00299" in table.stdout  # whole
    # `| head -1`: the reader leaves after one line of a long JSON answer
    with subprocess.Popen(
        [sys.executable, "-m", "s3facade", "log", "--data-dir", str(data), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read().decode()
        process.wait(60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_endpoint_credentials_come_from_the_aws_chain_never_the_dev_keys(
    server: RunningServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[facade]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}

    def log(*more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "s3facade", "log", "--endpoint", server.endpoint, "--json",
             "--limit", "1", *more],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    profiled = log("--profile", "facade")
    assert profiled.returncode == 0, profiled.stderr
    assert "events" in json.loads(profiled.stdout)
    none = log()
    assert none.returncode == 2 and "NoCredentials" in none.stderr
    assert "Traceback" not in none.stderr
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    assert log().returncode == 0


def test_offline_commands_take_the_default_relative_data_dir(tmp_path: Path) -> None:
    """`./data` (the default, as `make serve` leaves it) works from the directory above."""
    filled(tmp_path / "data", 1)
    for command in (["log", "--json"], ["verify", "--json"]):
        ran = subprocess.run(
            [sys.executable, "-m", "s3facade", *command],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert "Traceback" not in ran.stderr
