"""The conformance suite (conformance/run.py): real aws cli v1 and v2, rclone, restic and
boto3, unchanged.

Runs the suite as a subprocess (it starts its own server) and prints its report, so a
failing step shows up as its `FAIL <client>: <step>: <reason>` line in pytest's output.
Set S3FACADE_SKIP_CONFORMANCE=1 to skip it in a quick local loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(420)
@pytest.mark.skipif(
    os.environ.get("S3FACADE_SKIP_CONFORMANCE") == "1", reason="S3FACADE_SKIP_CONFORMANCE=1"
)
def test_conformance_suite() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance.run"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=400,
    )
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    lines = result.stdout.strip().splitlines()
    failures = [line for line in lines if line.startswith("FAIL ")]
    assert lines, "the suite printed nothing"
    assert lines[-1].endswith(" 0 failed"), "\n".join(failures) or lines[-1]
    assert result.returncode == 0, f"exit status {result.returncode}"
