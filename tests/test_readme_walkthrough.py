"""The README's walkthrough, run literally by bash: its aws cli block, its provenance block
(provenance, sql, attest, verify through the running server), then, with the server stopped
as the README says, its offline commands. Only the port differs (9000 may be taken)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.upstream_services import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block_after(heading: str) -> str:
    """The first ```sh block of the README section under `heading`."""
    section = README[README.index(heading) :]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"no shell block under {heading!r}"
    return found.group(1)


def bash(script: str, cwd: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3FACADE_"))}
    env |= {"HOME": str(cwd), "PATH": f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"}
    script = script.replace("127.0.0.1:9000", f"127.0.0.1:{port}")
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_newcomer_follows_the_readme_literally(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # the checkout's, as after `make test`
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3FACADE_")}
    server = subprocess.Popen(  # what `make serve` runs: the embedded defaults, ./data
        [sys.executable, "-m", "s3facade", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "no server"
            time.sleep(0.1)
        walkthrough = block_after("## Try it with the aws cli")
        provenance = block_after("## Provenance")
        ran = bash(walkthrough + provenance, tmp_path, port)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (tmp_path / "hello-back.txt").read_text() == "hello\n"
        assert "s3://artifacts/builds/hello.txt" in ran.stdout  # provenance's headline
        assert '"predicateType": "https://s3facade.dev/provenance/v1"' in ran.stdout  # attest
        assert "clean" in ran.stdout  # verify
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C, as the README says: offline means stopped
        output, _ = server.communicate(timeout=30)
    assert "development credentials" in output  # the loud warning at start
    offline = bash("s3facade=.venv/bin/s3facade\n$s3facade verify\n", tmp_path, port)
    assert offline.returncode == 0 and "clean" in offline.stdout, offline.stderr
    log = bash(".venv/bin/s3facade log --limit 20 --json\n", tmp_path, port)
    assert log.returncode == 0, log.stderr
    types = [event["type"] for event in json.loads(log.stdout)["events"]]
    assert {"BucketCreated", "ObjectWritten", "ObjectRead", "ObjectDeleted"} <= set(types)
