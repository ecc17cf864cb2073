"""Prometheus metrics at /-/metrics: requests by S3 operation and status, their latency,
and the registry's state read at scrape time (no bookkeeping on the request path)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from s3facade.registry import Registry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RegistryState(Collector):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        counts = self._registry.views.counts()  # kept per bucket as events apply
        log = self._registry.log
        yield CounterMetricFamily(
            "s3facade_events", "Events committed to the log", value=log.last_seq
        )
        yield CounterMetricFamily(
            "s3facade_log_transactions",
            "Log transactions committed by this process",
            value=log.commits,
        )
        yield GaugeMetricFamily("s3facade_buckets", "Buckets", value=counts.buckets)
        yield GaugeMetricFamily("s3facade_objects", "Current objects", value=counts.objects)
        yield GaugeMetricFamily("s3facade_versions", "Object versions", value=counts.versions)
        yield GaugeMetricFamily(
            "s3facade_multipart_uploads", "Unfinished uploads", value=counts.uploads
        )
        yield from _integrity(self._registry)


def _integrity(registry: Registry) -> Iterator[Metric]:
    """Damaged blobs (registry.integrity) and scrub passes (registry.scrub)."""
    integrity = registry.integrity
    damage = CounterMetricFamily(
        "s3facade_blob_damage",
        "Damaged blobs recorded by this process (each once), by what found them",
        labels=["detected_by"],
    )
    for detected_by, count in sorted(integrity.detections.items()):
        damage.add_metric([detected_by], count)
    yield damage
    yield GaugeMetricFamily(
        "s3facade_blobs_damaged",
        "Blobs known to be damaged (since start; until verified intact again)",
        value=integrity.known_count,
    )
    yield CounterMetricFamily(
        "s3facade_scrub_passes",
        "Scrub passes completed by this process",
        value=integrity.scrub_passes,
    )


class Metrics:
    def __init__(self, registry: Registry) -> None:
        self.collectors = CollectorRegistry()
        self.requests = Counter(
            "s3facade_requests",
            "S3 requests answered",
            ["operation", "status"],
            registry=self.collectors,
        )
        self.latency = Histogram(
            "s3facade_request_seconds",
            "Time to the response's headers",
            ["operation"],
            registry=self.collectors,
        )
        # Refused unsigned requests: counted, never logged one by one (they cost nothing to
        # send, so they must not be able to grow the log).
        self.anonymous_denied = Counter(
            "s3facade_anonymous_denied",
            "Anonymous requests refused for lack of permission",
            registry=self.collectors,
        )
        self.unrecorded_denied = Counter(
            "s3facade_denials_unrecorded",
            "Signed requests refused past their principal's budget of recorded refusals",
            registry=self.collectors,
        )
        self.collectors.register(RegistryState(registry))

    def observe(self, operation: str, status: int, seconds: float) -> None:
        self.requests.labels(operation, str(status)).inc()
        self.latency.labels(operation).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.collectors)
