"""Are the views still the log's? Rebuilding them, comparing, and the check that guards
every deletion of bytes: the part of the registry that judges its own views. The base of
the registry core (registry.core), whose attributes it names below.

A comparison builds fresh views from the log beside the live ones (the next generation
file), in a worker thread, and fingerprints both at the same log position: the live ones
inside one read transaction (a snapshot that says which event it reflects), the fresh ones
replayed up to exactly that event. Memory stays bounded (rows stream through a hash) and
requests are served throughout. "Replaying the log from its first event gives the views the
server persisted" is this comparison; `verify` runs it too.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3facade.registry.errors import LogUntrusted
from s3facade.registry.log import EventLog
from s3facade.registry.model import Provenance
from s3facade.registry.payloads import ViewsRebuilt
from s3facade.registry.views import Views, drop


@dataclass(frozen=True)
class Comparison:
    live: dict[str, Any]
    rebuilt: dict[str, Any]
    position: int  # the log event both were taken at
    fresh: Path  # the fresh views (a file beside the live ones) until discarded or swapped in

    @property
    def identical(self) -> bool:
        return self.live == self.rebuilt


class ViewChecks:
    _log: EventLog
    views: Views
    views_ready: bool
    # Why the views may not match the log (a rebuild found a difference and was not
    # forced): nothing that deletes bytes runs until this is resolved.
    untrusted: str | None
    _comparing: asyncio.Lock

    async def compare_views(self, *, keep: bool = False) -> Comparison:
        """Fresh views replayed from the log, fingerprinted with the live ones at one log
        position (see the module docstring). The fresh file is removed unless `keep`."""
        async with self._comparing:  # one fresh file (the next generation) at a time
            return await self._compare(keep=keep)

    async def _compare(self, *, keep: bool) -> Comparison:
        log, live = self._log, self.views
        fresh_path = live.next_generation()

        def compare() -> Comparison:
            fresh = Views(fresh_path, building=True)
            try:
                with live.snapshot() as snapshot:
                    position = snapshot.applied[0]
                    live_print = snapshot.fingerprint()
                fresh.catch_up(log, until=position)
                return Comparison(live_print, fresh.fingerprint(), position, fresh_path)
            finally:
                fresh.close()
                if not keep:
                    drop(fresh_path)

        return await asyncio.to_thread(compare)

    async def rebuild(self, provenance: Provenance, *, force: bool = False) -> dict[str, Any]:
        """Compare the live views with a fresh replay. A difference changes nothing unless
        `force`d (then the fresh views replace the live ones, recorded in the log as
        ViewsRebuilt); unforced, the registry is marked untrusted so that gc refuses to run
        on views that may be wrong."""
        async with self._comparing:  # no other comparison may take the next generation
            return await self._rebuild(provenance, force=force)

    async def _rebuild(self, provenance: Provenance, *, force: bool) -> dict[str, Any]:
        comparison = await self._compare(keep=force)
        swapped = False
        if not comparison.identical and not force:
            self.untrusted = (
                "a rebuild found views that differ from the log; run `s3facade rebuild "
                "--force` to replace them (recorded in the log) or restart the server"
            )
        elif not comparison.identical:
            await self._swap(comparison.fresh)
            rebuilt = ViewsRebuilt(
                **provenance.as_dict(),
                live=comparison.live,
                rebuilt=comparison.rebuilt,
                position=comparison.position,
            )
            await self._log.append([rebuilt.event()])
            self.untrusted, swapped = None, True
        elif force:
            drop(comparison.fresh)
        return {
            "identical": comparison.identical,
            "swapped": swapped,
            "live": comparison.live,
            "rebuilt": comparison.rebuilt,
        }

    async def _swap(self, fresh_path: Path) -> None:
        """Make the fresh views the live ones: caught up to the head on the writer thread,
        which then waits until the event loop switched its readers, so no commit lands on
        views nobody reads and no read sees views without the latest commit."""
        loop = asyncio.get_running_loop()
        switched = threading.Event()
        old = self.views

        def switch(fresh: Views) -> None:
            self.views = fresh
            switched.set()

        def catch_up_and_wait() -> None:
            fresh = Views(fresh_path)
            fresh.catch_up(self._log)
            fresh.mark_live()
            self._log.set_views(fresh)
            loop.call_soon_threadsafe(switch, fresh)
            switched.wait()

        await self._log.on_writer(catch_up_and_wait)
        old.close()
        drop(old.path)

    async def check_trusted(self) -> None:
        """Raise LogUntrusted unless the views and the log can be relied on to delete bytes:
        the views are loaded and follow the log, no unresolved rebuild difference, the
        anchor is current, and the log still holds the head this process committed
        (nothing rewrote it behind the server's back)."""
        if not self.views_ready:
            raise LogUntrusted("the views are still loading")
        for problem in (self.untrusted, self._log.anchor_error, self._log.views_error):
            if problem is not None:
                raise LogUntrusted(problem)
        seq, digest = self._log.last_seq, self._log.last_hash
        stored = await self._log.run_query(lambda: self._log.store.stored_hash(seq))
        if seq > 0 and stored != digest:
            raise LogUntrusted(
                f"the log no longer holds event {seq} as this server committed it: it was "
                "changed behind the server's back; stop it and run `s3facade verify`"
            )
