"""The machinery every client's steps share: running steps, tools, digests, the server log.

A step is a named callable that raises on failure. The suite runs each one in isolation
(exceptions and time-outs become a FAIL line, never an abort), skips a step whose
prerequisite failed (reported as a FAIL that names the prerequisite), and attributes to
each step the requests the server answered with an error, read from its access log.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


class StepFailure(Exception):
    """An expectation of a step that did not hold; the message is the one-line reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.detail = detail


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    name: str  # no ':' in it, so "FAIL <client>: <step>: <reason>" stays parseable
    run: Callable[[], None]
    needs: tuple[str, ...] = ()  # steps of the same client that must have passed
    timeout: float = 180.0
    # requests ("<METHOD> <S3 operation>") the client must have sent, so that a step named
    # "multipart" fails rather than passes if the client took another path
    sends: tuple[str, ...] = ()


@dataclass
class Outcome:
    client: str
    step: str
    passed: bool
    reason: str = ""
    detail: str = ""
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # "<status> <request shape>" per response
    exceptions: list[str] = field(default_factory=list)  # unhandled ones the server logged


class Suite:
    """Runs steps, prints `PASS <client>: <step>` / `FAIL <client>: <step>: <reason>`."""

    def __init__(
        self,
        out: TextIO,
        server_log: ServerLog | None,
        verbose: bool = False,
        budget: float = 300.0,
    ) -> None:
        self.out = out
        self.server_log = server_log
        self.verbose = verbose
        self.outcomes: list[Outcome] = []
        self.budget = budget
        # a hung server must not hold the run past its budget: later steps are not started
        self.deadline = time.monotonic() + budget

    def run_client(
        self, client: str, steps: Sequence[Step], cleanup: Callable[[], None] | None = None
    ) -> None:
        passed: set[str] = set()
        try:
            for step in steps:
                if ":" in step.name:
                    raise ValueError(f"step names must not contain ':': {step.name!r}")
                missing = [need for need in step.needs if need not in passed]
                left = self.deadline - time.monotonic()
                if missing:
                    outcome = Outcome(
                        client, step.name, False, f"not run: needs '{missing[0]}', which failed"
                    )
                elif left < 1:
                    reason = f"not run: the run's time budget ({self.budget:.0f} s) is spent"
                    outcome = Outcome(client, step.name, False, reason)
                else:
                    outcome = self._run_one(client, step)
                if outcome.passed:
                    passed.add(step.name)
                self._report(outcome)
        finally:
            if cleanup is not None:
                try:
                    cleanup()
                except Exception as exc:  # cleanup is best effort: the server is thrown away
                    print(f"  note: cleanup after {client} failed: {exc}", file=self.out)

    def _run_one(self, client: str, step: Step) -> Outcome:
        offset = self.server_log.offset() if self.server_log else 0
        started = time.monotonic()
        error = call_with_timeout(step.run, min(step.timeout, self.deadline - started))
        seconds = time.monotonic() - started
        logged = self.server_log.read_since(offset) if self.server_log else ""
        responses = responses_in(logged)
        errors = [f"{status} {shape}" for status, shape in responses if status >= 400]
        exceptions = exceptions_in(logged)
        if error is None and responses:  # no access lines at all: no access log to judge by
            sent = {shape for _, shape in responses}
            missing = [shape for shape in step.sends if shape not in sent]
            if missing:
                error = StepFailure(f"the client never sent {missing[0]} in this step")
        if error is None:
            return Outcome(client, step.name, True, seconds=seconds, errors=errors)
        if isinstance(error, StepFailure):
            reason, detail = str(error), error.detail
        else:
            reason = f"{type(error).__name__}: {error}"
            detail = "".join(traceback.format_exception(error))
        return Outcome(
            client, step.name, False, one_line(reason), detail, seconds, errors, exceptions
        )

    def _report(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.passed:
            print(f"PASS {outcome.client}: {outcome.step}", file=self.out, flush=True)
            return
        print(f"FAIL {outcome.client}: {outcome.step}: {outcome.reason}", file=self.out)
        for shape, count in Counter(outcome.errors).items():
            suffix = f" (x{count})" if count > 1 else ""
            print(f"    server answered {shape}{suffix}", file=self.out)
        for exception in dict.fromkeys(outcome.exceptions):
            print(f"    server logged an unhandled {exception}", file=self.out)
        if self.verbose and outcome.detail:
            for line in outcome.detail.rstrip().splitlines()[-40:]:
                print(f"    | {line}", file=self.out)
        self.out.flush()

    @property
    def failed(self) -> int:
        return sum(not o.passed for o in self.outcomes)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    def print_server_errors(self) -> None:
        """Every error response of the run, grouped by client and request shape."""
        by_client: dict[str, Counter[str]] = {}
        for outcome in self.outcomes:
            by_client.setdefault(outcome.client, Counter()).update(outcome.errors)
        if not any(by_client.values()):
            return
        print("server error responses (from its access log), by client:", file=self.out)
        for client, counter in by_client.items():
            for shape, count in sorted(counter.items(), key=lambda item: item[0]):
                print(f"  {client}: {count:5d} x {shape}", file=self.out)


def call_with_timeout(fn: Callable[[], None], timeout: float) -> BaseException | None:
    """Run fn in a daemon thread; its exception, a time-out StepFailure, or None."""
    result: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return StepFailure(f"timed out after {timeout:.0f} s (step abandoned)")
    return result[0]


def one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- the server log

CREATE_MULTIPART_UPLOAD = "POST CreateMultipartUpload"

# The server's access-log line (s3facade.access_log, text format).
_ACCESS_LINE = re.compile(
    r"s3facade\.access: .*?\bmethod=(?P<method>[A-Z]+)\b.*?\boperation=(?P<operation>\S+)"
    r".*?\bstatus=(?P<status>\d{3})"
)


class ServerLog:
    """The server's log: its access lines, and the tracebacks it writes at debug level."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def read_since(self, offset: int) -> str:
        try:
            with self.path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""


def responses_in(logged: str) -> list[tuple[int, str]]:
    """(status, request shape) of every response in a piece of the access log."""
    return [
        (int(match["status"]), f"{match['method']} {match['operation']}")
        for match in _ACCESS_LINE.finditer(logged)
    ]


def exceptions_in(logged: str) -> list[str]:
    """The final line ('TypeError: ...') of every traceback in a piece of the server log."""
    found = []
    lines = logged.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            following = (text for text in lines[index + 1 :] if text and not text[0].isspace())
            found.append(one_line(next(following, "(truncated traceback)"), 300))
    return found


# --------------------------------------------------------------------------- tools and processes


def find_tool(name: str) -> str | None:
    """A client from the running venv, then the repository's .venv, then PATH."""
    for candidate in (
        Path(sys.executable).with_name(name),
        REPO_ROOT / ".venv" / "bin" / name,
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def base_env(home: Path) -> dict[str, str]:
    """A minimal environment for client processes: nothing of the user's leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUTF8": "1",
        "PYTHONIOENCODING": "utf-8",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


@dataclass(frozen=True)
class Ran:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_tool(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 120.0,
    cwd: Path | None = None,
    check: bool = True,
    stdin: bytes | None = None,
) -> Ran:
    """Run a client with a time-out; a non-zero exit (when check) raises StepFailure.

    stdin, when given, reaches the client through a pipe (not seekable, as from a shell)."""
    if not Path(args[0]).is_file():
        raise StepFailure(f"client not found: {args[0]}")
    try:
        proc = subprocess.run(
            list(args),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL if stdin is None else None,  # input= makes its own pipe
            input=stdin,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode("utf-8", "replace")
        output += (exc.stderr or b"").decode("utf-8", "replace")
        raise StepFailure(
            f"timed out after {timeout:.0f} s: {short_command(args)}", detail=output
        ) from None
    ran = Ran(
        list(args),
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )
    if check and ran.returncode != 0:
        raise StepFailure(
            f"{short_command(args)} exited {ran.returncode}: {error_summary(ran.output)}",
            detail=ran.output,
        )
    return ran


def short_command(args: Sequence[str]) -> str:
    words = [Path(args[0]).name, *args[1:]]
    if "--endpoint-url" in words:  # the same in every command: noise in a reason
        at = words.index("--endpoint-url")
        del words[at : at + 2]
    text = " ".join(words)
    return text if len(text) <= 160 else text[:157] + "..."


_ERROR_WORDS = re.compile(r"error|failed|denied|not implemented|exception", re.IGNORECASE)


def error_summary(output: str, lines: int = 3) -> str:
    """The most telling lines of a client's output (progress lines dropped)."""
    candidates = [
        line.strip()
        for line in re.split(r"[\r\n]+", output)
        if line.strip() and not line.lstrip().startswith("Completed ")
    ]
    telling = [line for line in candidates if _ERROR_WORDS.search(line)]
    chosen = (telling or candidates)[-lines:]
    return one_line(" | ".join(dict.fromkeys(chosen))) or "(no output)"


def output_lines(text: str) -> list[str]:
    """Lines of a client's output, progress updates written with '\\r' split off."""
    return [line for line in re.split(r"[\r\n]+", text) if line.strip()]


# --------------------------------------------------------------------------- bytes


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def expect_same(expected_sha256: str, path: Path, what: str) -> None:
    if not path.is_file():
        raise StepFailure(f"{what}: {path.name} was not written")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise StepFailure(
            f"{what}: SHA-256 differs from the source "
            f"({path.stat().st_size} bytes, {actual[:16]}… != {expected_sha256[:16]}…)"
        )


def md5_etag(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as source:
        while chunk := source.read(MiB):
            digest.update(chunk)
    return f'"{digest.hexdigest()}"'


def multipart_etag(path: Path, part_size: int) -> str:
    """The S3 ETag of a multipart upload of path in part_size parts: MD5 of part MD5s, -N."""
    part_digests = []
    with path.open("rb") as source:
        while part := source.read(part_size):
            part_digests.append(hashlib.md5(part).digest())
    return f'"{hashlib.md5(b"".join(part_digests)).hexdigest()}-{len(part_digests)}"'


def expect_equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        raise StepFailure(f"{what}: got {actual!r}, expected {expected!r}")


def expect_same_names(actual: Iterable[str], expected: Iterable[str], what: str) -> None:
    got, want = set(actual), set(expected)
    if got != want:
        missing, extra = sorted(want - got), sorted(got - want)
        raise StepFailure(
            f"{what}: {len(missing)} missing {missing[:5]}, {len(extra)} unexpected {extra[:5]}"
        )


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunContext:
    """What every client's steps get: the live endpoint, a scratch dir, the source files."""

    endpoint: str
    work: Path  # scratch space: downloads go under work/<client>/
    home: Path  # HOME (and TMPDIR) of client processes: empty, so no user config applies
    access_key: str
    secret_key: str
    region: str
