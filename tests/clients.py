"""The real command-line clients tests drive: s3facade's own CLI, the aws cli, rclone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, RunningServer

BIN = Path(sys.executable).parent


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`s3facade ...` with the test credentials; asserts success unless ok=False."""
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
        "COLUMNS": "200",  # rich's table width when stdout is not a terminal
    }
    result = subprocess.run(
        [sys.executable, "-m", "s3facade", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def aws(server: RunningServer, *args: str, cwd: Path | None = None) -> str:
    """The aws cli (from the venv), isolated from the user's configuration."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    result = subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", server.endpoint, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"aws {' '.join(args)}: {result.stderr}"
    return result.stdout


def rclone(server: RunningServer, *args: str) -> str:
    """rclone (from the venv) with a remote `s3f:` defined in the environment only."""
    env = {
        **os.environ,
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_S3F_TYPE": "s3",
        "RCLONE_CONFIG_S3F_PROVIDER": "Other",
        "RCLONE_CONFIG_S3F_ENDPOINT": server.endpoint,
        "RCLONE_CONFIG_S3F_ACCESS_KEY_ID": ACCESS_KEY,
        "RCLONE_CONFIG_S3F_SECRET_ACCESS_KEY": SECRET_KEY,
        "RCLONE_CONFIG_S3F_REGION": REGION,
    }
    result = subprocess.run(
        [str(BIN / "rclone"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr
