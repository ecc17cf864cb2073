"""Run unchanged real S3 clients against a live s3facade server and report each step.

    .venv/bin/python -m conformance.run [--client aws-cli|aws-cli-v2|rclone|boto3|restic ...]
                                        [--keep] [--verbose]
    python conformance/run.py ...        (re-runs itself under the repository's .venv if needed)

Starts `s3facade serve` on a free loopback port over a temporary data dir, runs every
client's steps, prints `PASS <client>: <step>` or `FAIL <client>: <step>: <reason>` per step,
then the server's error responses grouped by client, and ends with `N passed, N failed`.
The exit status is 1 when any step failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import from the repository, not from here
    _ROOT = Path(__file__).resolve().parent.parent
    sys.path[0] = str(_ROOT)
    _VENV = _ROOT / ".venv"
    if (_VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != _VENV.resolve():
        # the repository's venv has the server's dependencies and the pinned clients
        _PYTHON = str(_VENV / "bin" / "python")
        os.execv(_PYTHON, [_PYTHON, str(Path(__file__).resolve()), *sys.argv[1:]])

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import httpx

from conformance.harness import (
    MiB,
    RunContext,
    ServerLog,
    Step,
    StepFailure,
    Suite,
    exceptions_in,
)
from conformance.steps_aws_cli import AwsCliSteps
from conformance.steps_aws_cli_v2 import AwsCliV2Steps
from conformance.steps_boto3 import Boto3Steps
from conformance.steps_rclone import RcloneSteps
from conformance.steps_restic import ResticSteps
from conformance.workload import Workload
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, RunningServer

CLIENTS: dict[str, Any] = {
    "aws-cli": AwsCliSteps,
    "aws-cli-v2": AwsCliV2Steps,
    "rclone": RcloneSteps,
    "boto3": Boto3Steps,
    "restic": ResticSteps,
}


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--client", action="append", choices=sorted(CLIENTS), help="run only these clients"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    parser.add_argument("--verbose", action="store_true", help="full client output on failure")
    parser.add_argument(
        "--huge-mib", type=int, default=100, help="size of the aws cli multipart file (100)"
    )
    parser.add_argument(
        "--budget", type=float, default=300, help="seconds after which no step starts (300)"
    )
    args = parser.parse_args(argv)
    out = out or sys.stdout
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="s3facade-conformance-"))
    home = scratch / "home"
    home.mkdir()
    suite: Suite | None = None
    try:
        with isolated_environ():
            files = Workload(scratch / "files").generate(huge_size=args.huge_mib * MiB)
            server = RunningServer(scratch / "server" / "data", extra_args=["--log-level", "debug"])
            server.data_dir.parent.mkdir(parents=True)
            try:
                server.start()
            except Exception as exc:
                print(f"FAIL server: start: {exc}", file=out)
                print("0 passed, 1 failed", file=out)
                return 1
            assert server.log_path is not None
            server_log = ServerLog(server.log_path)
            suite = Suite(out, server_log, verbose=args.verbose, budget=args.budget)
            try:
                ctx = RunContext(
                    endpoint=server.endpoint,
                    work=scratch / "work",
                    home=home,
                    access_key=ACCESS_KEY,
                    secret_key=SECRET_KEY,
                    region=REGION,
                )
                for name in args.client or list(CLIENTS):
                    run_client(suite, CLIENTS[name], ctx, files)
                suite.run_client("server", server_steps(server, server_log))
            finally:
                server.stop()
        suite.print_server_errors()
        print(f"elapsed {time.monotonic() - started:.1f} s", file=out)
        print(f"{suite.passed} passed, {suite.failed} failed", file=out, flush=True)
        return 1 if suite.failed else 0
    finally:
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def run_client(suite: Suite, steps_class: Any, ctx: RunContext, files: Workload) -> None:
    try:
        client = steps_class(ctx, files)
    except Exception as exc:
        name = getattr(steps_class, "client", steps_class.__name__)
        reason = f"{type(exc).__name__}: {exc}"

        def fail() -> None:
            raise StepFailure(reason)

        suite.run_client(name, [Step("set-up", fail)])
        return
    suite.run_client(client.client, client.steps(), client.cleanup)


def server_steps(server: RunningServer, log: ServerLog) -> list[Step]:
    """The server outlived every client and logged no unhandled exception."""

    def still_serving() -> None:
        if server.process is None or server.process.poll() is not None:
            raise StepFailure("the server process exited during the run")
        response = httpx.get(f"{server.endpoint}/-/health", timeout=5)
        if response.status_code != 200:
            raise StepFailure(f"/-/health answered {response.status_code}")

    def no_tracebacks() -> None:
        exceptions = exceptions_in(log.read_since(0))
        if exceptions:
            kinds = "; ".join(dict.fromkeys(exceptions))
            raise StepFailure(f"{len(exceptions)} unhandled exceptions in the server log: {kinds}")

    return [
        Step("still serving after the run", still_serving),
        Step("no unhandled exceptions in its log", no_tracebacks),
    ]


@contextmanager
def isolated_environ() -> Iterator[None]:
    """In-process clients (boto3) read os.environ: keep the user's AWS settings out."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("BOTO_"):
            del os.environ[name]
    os.environ.update(
        {
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    sys.exit(main())
