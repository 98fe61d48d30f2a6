"""Prometheus metrics, one registry per server (so tests can run several servers in one process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .review import Outcome


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ddcompat_admission_requests",
            "Admission reviews answered, by decision, mode, kind and operation.",
            ["decision", "mode", "kind", "operation"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ddcompat_admission_duration_seconds",
            "Time to answer one admission review (body read to reply).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.findings = Counter(
            "ddcompat_findings",
            "Findings reported in admission reviews.",
            ["code", "severity"],
            registry=self.registry,
        )
        self.bad_requests = Counter(
            "ddcompat_admission_bad_requests", "Bodies answered with HTTP 400.", registry=self.registry
        )
        self.errors = Counter(
            "ddcompat_admission_errors",
            "Reviews that failed inside ddcompat (answered allowed).",
            registry=self.registry,
        )
        self.policy_reload_failures = Counter(
            "ddcompat_policy_reload_failures",
            "Policy reloads rejected; the last good policy stays.",
            registry=self.registry,
        )
        self.policy_info = Gauge(
            "ddcompat_policy_info", "The policy in force (value 1).", ["version"], registry=self.registry
        )
        self.audit_workloads = Gauge(
            "ddcompat_audit_workloads",
            "Running workloads by audit decision.",
            ["decision"],
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "ddcompat_events_dropped", "Events not posted: the queue was full.", registry=self.registry
        )
        self.tls_reload_failures = Counter(
            "ddcompat_tls_reload_failures",
            "Certificate reloads rejected; the previous certificate stays.",
            registry=self.registry,
        )

    def observe(self, outcome: Outcome, seconds: float) -> None:
        self.requests.labels(
            outcome.decision, outcome.mode, outcome.kind or "-", outcome.operation or "-"
        ).inc()
        self.duration.observe(seconds)
        for finding in outcome.findings:
            self.findings.labels(finding.code, finding.severity).inc()

    def set_policy(self, version: str) -> None:
        self.policy_info.clear()
        self.policy_info.labels(version).set(1)

    def attach_lookup(self, stats: Any) -> None:
        """Export an `ImageLookup`'s counters, read at scrape time (nothing on the request path)."""
        self.registry.register(_LookupCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LookupCollector(Collector):
    def __init__(self, stats: Any) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        requests = CounterMetricFamily(
            "ddcompat_registry_requests", "Image lookups sent to registries, by result.", labels=["result"]
        )
        requests.add_metric(["ok"], self.stats.ok)
        requests.add_metric(["error"], self.stats.failures)
        requests.add_metric(["timeout"], self.stats.timeouts)
        yield requests
        yield CounterMetricFamily(
            "ddcompat_registry_cache_hits", "Image facts answered from the cache.", value=self.stats.hits
        )
        yield CounterMetricFamily(
            "ddcompat_registry_cache_misses", "Image facts not in the cache.", value=self.stats.misses
        )
