"""The clock retention and lifecycle decisions use."""

from __future__ import annotations

from datetime import datetime, timedelta

from s3facade.registry.events import utc_now


class Clock:
    """Naive-UTC now, plus an offset that tests (and only they) move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
