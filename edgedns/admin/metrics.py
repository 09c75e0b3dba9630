"""Metrics: plain counters on the query path, turned into Prometheus families at scrape time.

The per-query cost is one dict increment and one histogram bucket; everything else (pool
health, probe RTTs, upstreams, cache, reloads) is read from the running server only when
``/metrics`` is scraped, by `ServerCollector`.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dnslib import QTYPE, RCODE
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from edgedns.dns import names
from edgedns.vip.router import State

if TYPE_CHECKING:
    from edgedns.server.lifecycle import Server

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds; fine-grained at the low end where authoritative answers live."""
FASTEST = LATENCY_BUCKETS[0]
TRANSPORTS = ("udp", "tcp")
KNOWN_TYPES = frozenset(QTYPE.forward)
"""Query types counted under their own name; any other is counted as `other` (as CoreDNS
does), so clients asking random types cannot grow the counters or the label set."""
OTHER = -1
Labels = tuple[str, int, int, bool]
"""Zone apex, query type (`OTHER` for the rest), rcode, over TCP."""


class QueryStats:
    """Counters the query path bumps. Labels: zone apex ("forward" for names sent upstream,
    "" when no zone was involved), query type, rcode, transport."""

    def __init__(self) -> None:
        self.queries: dict[Labels, int] = {}
        self.latency = ([0] * (len(LATENCY_BUCKETS) + 1), [0] * (len(LATENCY_BUCKETS) + 1))
        """Per transport (indexed by `tcp`), the histogram's bucket counts."""
        self.latency_sum = [0.0, 0.0]

    @staticmethod
    def labels(zone: str, qtype: int, rcode: int, tcp: bool) -> Labels:
        """The counter key for one answered query."""
        return zone, qtype if qtype in KNOWN_TYPES else OTHER, rcode, tcp

    def count(self, zone: str, qtype: int, rcode: int, tcp: bool, seconds: float) -> None:
        """`tally(labels(...))`, written out: it runs for every query no cache answers."""
        labels = zone, qtype if qtype in KNOWN_TYPES else OTHER, rcode, tcp
        queries = self.queries
        queries[labels] = queries.get(labels, 0) + 1
        self.latency[tcp][0 if seconds <= FASTEST else bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[tcp] += seconds

    def tally(self, labels: Labels, seconds: float) -> None:
        """`count` with the key made already (remembered replies keep theirs)."""
        queries = self.queries
        queries[labels] = queries.get(labels, 0) + 1
        tcp = labels[3]
        self.latency[tcp][0 if seconds <= FASTEST else bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[tcp] += seconds


def _one(family: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str,
         help_text: str, value: float) -> Metric:
    """A family of one unlabelled sample."""
    metric = family(name, help_text)
    metric.add_metric((), value)
    return metric


def _counts(name: str, help_text: str, label: str, **values: float) -> Metric:
    """A counter family of one sample per value, labelled `label`=its keyword."""
    metric = CounterMetricFamily(name, help_text, labels=(label,))
    for key, value in values.items():
        metric.add_metric((key,), value)
    return metric


class ServerCollector:
    """Reads a running `Server` into metric families when Prometheus scrapes."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        stats = server.stats
        queries = CounterMetricFamily("edgedns_queries", "DNS queries answered",
                                      labels=("zone", "type", "rcode", "transport"))
        for (zone, qtype, rcode, tcp), n in list(stats.queries.items()):
            name = "other" if qtype == OTHER else QTYPE.get(qtype)
            queries.add_metric((zone, name, RCODE.get(rcode), TRANSPORTS[tcp]), n)
        yield queries

        latency = HistogramMetricFamily(
            "edgedns_query_duration_seconds", "Time from a query's arrival to its reply",
            labels=("transport",))
        for tcp in (False, True):
            counts = stats.latency[tcp]
            cumulative, running = [], 0
            for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric((TRANSPORTS[tcp],), cumulative, stats.latency_sum[tcp])
        yield latency

        rrl = server.handler.rate_limit
        if rrl is not None:
            yield _one(CounterMetricFamily, "edgedns_rrl_dropped",
                       "UDP replies dropped by response-rate limiting", rrl.dropped)
            yield _one(CounterMetricFamily, "edgedns_rrl_slipped",
                       "UDP replies sent truncated by response-rate limiting", rrl.slipped)

        connections = server.connections
        yield _one(GaugeMetricFamily, "edgedns_tcp_connections", "Open DNS TCP connections",
                   len(connections.open))
        yield _one(CounterMetricFamily, "edgedns_tcp_refused",
                   "TCP connections closed at once: a connection cap was reached",
                   connections.refused)
        yield _one(CounterMetricFamily, "edgedns_tcp_evicted",
                   "Idle TCP connections closed to make room for a new one", connections.evicted)

        hooks = server.hooks
        yield _counts("edgedns_notify_events", "Events for the notify hooks", "result",
                      sent=hooks.sent, failed=hooks.failed, dropped=hooks.dropped)

        yield from self._pools()
        yield from self._forwarding()
        yield from self._vrrp()
        config = server.config
        if config.etcd is not None and config.documents is not None:
            yield _one(GaugeMetricFamily, "edgedns_etcd_revision",
                       "The etcd revision of the documents served", config.documents.revision)
            yield _one(GaugeMetricFamily, "edgedns_etcd_connected",
                       "1 while the etcd watch runs", float(server.etcd.connected))
            yield _one(GaugeMetricFamily, "edgedns_etcd_from_cache",
                       "1 while serving documents from the cache file (etcd unreachable)",
                       float(config.documents.from_cache))

        reloads = CounterMetricFamily("edgedns_reloads", "Config reloads tried",
                                      labels=("result",))
        reloads.add_metric(("success",), server.reloads.successes)
        reloads.add_metric(("failure",), server.reloads.failures)
        yield reloads
        yield _one(GaugeMetricFamily, "edgedns_last_reload_successful",
                   "1 when the last reload was applied, 0 when it was refused",
                   0 if server.reloads.last_error else 1)
        yield _one(GaugeMetricFamily, "edgedns_uptime_seconds",
                   "Seconds since the server started", time.monotonic() - server.started)

    def _pools(self) -> Iterator[Metric]:
        pools = self.server.pools
        member_up = GaugeMetricFamily(
            "edgedns_member_up", "1 when a pool member is healthy", labels=("pool", "member"))
        drained = GaugeMetricFamily(
            "edgedns_member_drained", "1 when a pool member is drained (probed, not handed out)",
            labels=("pool", "member"))
        rtt = GaugeMetricFamily(
            "edgedns_probe_rtt_seconds", "RTT of a member's last answered probe",
            labels=("pool", "member"))
        healthy = GaugeMetricFamily(
            "edgedns_pool_healthy_members", "Healthy members of a pool", labels=("pool",))
        for pool in pools.pools.values():
            pool_name = names.to_text(pool.name)
            up_count = 0
            for member in pool.members:
                up = pools.is_up(member)
                up_count += up
                member_up.add_metric((pool_name, member.address), int(up))
                drained.add_metric((pool_name, member.address),
                                   int((pool.name, member.address) in pools.drained))
                health = pools.health.get(member.target) if member.target else None
                if health is not None and health.last is not None and health.last.rtt is not None:
                    rtt.add_metric((pool_name, member.address), health.last.rtt)
            healthy.add_metric((pool_name,), up_count)
        yield member_up
        yield drained
        yield rtt
        yield healthy
        scheduler = self.server.scheduler
        yield _one(CounterMetricFamily, "edgedns_probes", "Health probes started",
                   scheduler.probes_started)
        yield _one(CounterMetricFamily, "edgedns_icmp_replies_unmatched",
                   "ICMP echo replies with our identifier that matched no probe in flight "
                   "(wrong sequence or nonce: forged, late or duplicated)",
                   self.server.icmp.unmatched)
        yield _one(CounterMetricFamily, "edgedns_icmp_replies_foreign",
                   "ICMP echo replies to other probers on the host read by edgedns (0 while "
                   "the kernel filter works)", self.server.icmp.foreign)
        failures = CounterMetricFamily(
            "edgedns_background_failures",
            "Unexpected exceptions in background work, each logged with its traceback: a "
            "probe that raised, or a supervised task that died and was restarted",
            labels=("task",))
        failures.add_metric(("probe",), scheduler.probe_errors)
        forwarder = self.server.handler.forwarder
        if forwarder is not None:
            failures.add_metric(("upstream-probe",), forwarder.probe_errors)
        for task, restarts in self.server.supervisor.restarts.items():
            failures.add_metric((task,), restarts)
        yield failures
        yield _one(GaugeMetricFamily, "edgedns_health_stalled",
                   "1 when no probe result came for 3 check intervals",
                   0 if scheduler.stalled() is None else 1)
        yield _one(GaugeMetricFamily, "edgedns_probe_lateness_max_seconds",
                   "Largest delay between a probe's due time and its start",
                   scheduler.max_lateness)

    def _vrrp(self) -> Iterator[Metric]:
        vrrp = self.server.vrrp
        if vrrp is None:
            return
        state = GaugeMetricFamily("edgedns_vrrp_state",
                                  "1 for the state each virtual router is in",
                                  labels=("family", "vrid", "state"))
        priority = GaugeMetricFamily("edgedns_vrrp_priority", "Priority advertised now",
                                     labels=("family", "vrid"))
        transitions = CounterMetricFamily("edgedns_vrrp_transitions",
                                          "State changes of each virtual router",
                                          labels=("family", "vrid"))
        for family, router in sorted(vrrp.agent.routers.items()):
            labels = (f"IPv{family}", str(router.settings.vrid))
            for each in State:
                state.add_metric((*labels, each.value), float(router.state is each))
            priority.add_metric(labels, router.priority)
            transitions.add_metric(labels, router.transitions)
        yield state
        yield priority
        yield transitions
        counters = vrrp.agent.counters
        yield _counts("edgedns_vrrp_adverts", "VRRP adverts", "direction", sent=counters.sent,
                      received=counters.received, dropped=counters.dropped)
        yield _one(CounterMetricFamily, "edgedns_vrrp_announcements",
                   "Gratuitous ARPs and unsolicited neighbour advertisements sent",
                   counters.announcements)
        yield _one(CounterMetricFamily, "edgedns_vrrp_address_errors",
                   "Virtual addresses that could not be added or removed",
                   counters.address_errors)
        check = vrrp.self_check
        yield _one(GaugeMetricFamily, "edgedns_vrrp_dns_self_check_up",
                   "1 while this node's own DNS listener answers its self-check",
                   float(check is not None and check.down is None))

    def _forwarding(self) -> Iterator[Metric]:
        forwarder = self.server.handler.forwarder
        if forwarder is None:
            return
        results = CounterMetricFamily("edgedns_upstream_queries", "Queries sent upstream",
                                      labels=("upstream", "result"))
        up = GaugeMetricFamily("edgedns_upstream_up", "1 unless an upstream is marked down",
                               labels=("upstream",))
        for state in forwarder.states():
            name = str(state.upstream)
            for result, n in state.results.items():
                results.add_metric((name, result), n)
            up.add_metric((name,), 0 if state.down else 1)
        yield results
        yield up
        cache = forwarder.cache
        yield _one(CounterMetricFamily, "edgedns_cache_hits",
                   "Forwarded questions answered from the cache", cache.hits)
        yield _one(CounterMetricFamily, "edgedns_cache_misses",
                   "Forwarded questions not in the cache", cache.misses)
        yield _one(CounterMetricFamily, "edgedns_cache_stale_served",
                   "Answers served stale (RFC 8767)", cache.stale_served)
        yield _one(GaugeMetricFamily, "edgedns_cache_entries", "Answers in the cache",
                   len(cache))


def render(server: Server) -> bytes:
    """The Prometheus text exposition of `server`'s metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    return generate_latest(registry)
