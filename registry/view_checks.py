"""Are the views still the log's? Replaying them, comparing, and the check that guards
every deletion of bytes: the part of the Registry that judges its own views. A mixin, so
callers keep one Registry API."""

from __future__ import annotations

from typing import Any

from registry.errors import CorruptLog, LogUntrusted
from registry.events import Event, EventType
from registry.log import EventLog
from registry.model import Provenance
from registry.namespace import Namespace


class ViewChecks:
    _log: EventLog
    namespace: Namespace
    # Why the views may not match the log (a rebuild found a difference and was not
    # forced): nothing that deletes bytes runs until this is resolved.
    untrusted: str | None

    def compare_views(self) -> tuple[Namespace, dict[str, Any], dict[str, Any]]:
        """Fresh views replayed from the log, and the fingerprints of the live views and of
        the fresh ones, taken at the same log position (equal when consistent).

        Runs on the event loop without awaiting, so no commit lands in between."""
        fresh = replay(self._log)
        return fresh, self.namespace.fingerprint(), fresh.fingerprint()

    async def rebuild(self, provenance: Provenance, *, force: bool = False) -> dict[str, Any]:
        """Compare the live views with a fresh replay. A difference changes nothing unless
        `force`d (then the swap is recorded in the log as ViewsRebuilt); unforced, the
        registry is marked untrusted so that gc refuses to run on views that may be wrong."""
        fresh, before, after = self.compare_views()
        identical = before == after
        swapped = False
        if not identical and not force:
            self.untrusted = (
                "a rebuild found views that differ from the log; run `s3facade rebuild "
                "--force` to replace them (recorded in the log) or restart the server"
            )
        elif not identical:
            self.namespace = fresh
            self._log.set_on_commit(fresh.apply)
            data = {**provenance.as_dict(), "live": before, "rebuilt": after}
            await self._log.append([Event(EventType.VIEWS_REBUILT, "", None, data)])
            self.untrusted, swapped = None, True
        return {"identical": identical, "swapped": swapped, "live": before, "rebuilt": after}

    async def check_trusted(self) -> None:
        """Raise LogUntrusted unless the views and the log can be relied on to delete bytes:
        no unresolved rebuild difference, the anchor is current, and the log still holds
        the head this process committed (nothing rewrote it behind the server's back)."""
        if self.untrusted is not None:
            raise LogUntrusted(self.untrusted)
        if self._log.anchor_error is not None:
            raise LogUntrusted(self._log.anchor_error)
        seq, digest = self._log.last_seq, self._log.last_hash
        stored = await self._log.run_query(lambda: self._log.stored_hash(seq))
        if seq > 0 and stored != digest:
            raise LogUntrusted(
                f"the log no longer holds event {seq} as this server committed it: it was "
                "changed behind the server's back; stop it and run `s3facade verify`"
            )


def replay(log: EventLog) -> Namespace:
    """Fresh views from every event of the log."""
    namespace = Namespace()
    for event in log.replay():
        try:
            namespace.apply(event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptLog(event.seq, repr(exc)) from exc
    return namespace
