"""py-spy on the s3facade server while a workload runs, and the profile's summary: the
functions that take the most samples, inclusive (anywhere on the stack) and self (on top)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """Samples `pid` (all threads, idle ones left out) into `output` (collapsed stacks)
    while the block runs; nothing when `output` is None."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise RuntimeError("py-spy is not installed (pip install -e '.[dev]')")
    command = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    # --gil: only the thread holding the GIL, so a sample is Python work, not a wait.
    command += ["--output", str(output), "--threads", "--nonblocking", "--gil"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        recorder.send_signal(subprocess.signal.SIGINT)  # py-spy writes its file on SIGINT
        recorder.wait(timeout=60)


def summary(collapsed: Path, top: int = 15) -> list[dict[str, object]]:
    """The `top` functions by inclusive share of the samples, with their self share."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")[1:]]  # [0]: the thread
        if not frames:
            continue
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    return [
        {
            "function": name,
            "inclusive_pct": round(100 * count / total, 1),
            "self_pct": round(100 * own[name] / total, 1),
        }
        for name, count in inclusive.most_common()
        if not name.startswith(_ENTRY_POINTS)
    ][:top]


# Frames every sample passes through (thread and event-loop entry points): not news.
_ENTRY_POINTS = (
    "<module>", "_run_code", "_run_module_as_main", "main (", "serve (", "serve_app (",
    "Server.run", "asyncio_run", "Runner.run", "run (", "_run_once", "run_forever",
    "run_until", "Thread.", "_worker (", "_WorkItem.run",
)  # fmt: skip


def _function(frame: str) -> str:
    """`handle (s3facade/app.py:123)` -> `handle (s3facade/app.py)`: one entry per function."""
    name, _, place = frame.partition(" (")
    path = place.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "/s3facade/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"
