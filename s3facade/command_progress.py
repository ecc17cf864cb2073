"""Where a long command reports how far it got (command_table.Progress): a rich bar on the
terminal, a record the admin API streams to the CLI as JSON lines, or nowhere.

Online, a request with `Accept: application/x-ndjson` is answered line by line: a
`{"progress": [{"description", "completed", "total"}, ...]}` line every half second while
the command runs and once where it ended, then one `{"result": ...}` or `{"error",
"message", "status"}` line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import TaskID

from s3facade.command_table import TaskProgress

STREAM_TYPE = "application/x-ndjson"


class _Nothing:
    def advance(self, amount: int) -> None:
        pass

    def update(self, completed: int, total: int | None) -> None:
        pass


class NoProgress:
    def task(self, description: str, total: int | None = None) -> TaskProgress:
        return _Nothing()


class _BarTask:
    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        self._bar, self._task = bar, task

    def advance(self, amount: int) -> None:
        self._bar.advance(self._task, amount)

    def update(self, completed: int, total: int | None) -> None:
        self._bar.update(self._task, completed=completed, total=total)


class TerminalProgress:
    """Bars on stderr, gone once the command is done (its result is what stays)."""

    def __init__(self, bar: RichProgress) -> None:
        self.bar = bar
        self._tasks: dict[str, TaskID] = {}

    def task(self, description: str, total: int | None = None) -> TaskProgress:
        return _BarTask(self.bar, self._task_id(description, total))

    def show(self, tasks: list[dict[str, Any]]) -> None:
        """A server's progress line, drawn as the same bars."""
        for entry in tasks:
            task = self._task_id(str(entry["description"]), entry.get("total"))
            self.bar.update(task, completed=entry["completed"], total=entry.get("total"))

    def _task_id(self, description: str, total: int | None) -> TaskID:
        if description not in self._tasks:
            self._tasks[description] = self.bar.add_task(description, total=total)
        return self._tasks[description]


@contextmanager
def terminal_progress(enabled: bool) -> Iterator[TerminalProgress]:
    bar = RichProgress(console=Console(stderr=True), transient=True, disable=not enabled)
    with bar:
        yield TerminalProgress(bar)


class _RecordedTask:
    def __init__(self, entry: dict[str, Any], lock: threading.Lock) -> None:
        self._entry, self._lock = entry, lock

    def advance(self, amount: int) -> None:
        with self._lock:  # blocking work reports from worker threads
            self._entry["completed"] += amount

    def update(self, completed: int, total: int | None) -> None:
        with self._lock:
            self._entry["completed"], self._entry["total"] = completed, total


class ProgressRecord:
    """A server-side command's progress, read by the stream that reports it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: list[dict[str, Any]] = []

    def task(self, description: str, total: int | None = None) -> TaskProgress:
        entry = {"description": description, "completed": 0, "total": total}
        with self._lock:
            self._tasks.append(entry)
        return _RecordedTask(entry, self._lock)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._tasks]
