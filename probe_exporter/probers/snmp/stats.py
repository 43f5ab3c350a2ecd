"""snmp_exporter's exporter-wide metrics (served on /metrics), process-wide like upstream's.

No pysnmp import here: /metrics must not pay for the SNMP stack before a module uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric


class SnmpStats:
    def __init__(self) -> None:
        self.collection_duration = Histogram(
            "snmp_collection_duration_seconds", "Duration of collections by the SNMP exporter", ["module"],
            registry=None)
        self.request_errors = Counter("snmp_request_errors", "Errors in requests to the SNMP exporter",
                                      registry=None)
        self.unexpected_pdu_type = Counter("snmp_unexpected_pdu_type",
                                           "Unexpected Go types in a PDU.", registry=None)
        self.packet_duration = Histogram(
            "snmp_packet_duration_seconds", "A histogram of latencies for SNMP packets.",
            buckets=[0.0001 * 2 ** n for n in range(15)], registry=None)
        self.packets = Counter("snmp_packets", "Number of SNMP packet sent, including retries.", registry=None)
        self.retries = Counter("snmp_packet_retries", "Number of SNMP packet retries.", registry=None)
        self.in_flight = Gauge("snmp_request_in_flight", "Current number of SNMP scrapes being requested.",
                               registry=None, multiprocess_mode="livesum")
        # --snmp.lookup-cache: lookup walks served from the cache, and those walked (lookupcache.py).
        self.lookup_cache_hits = Counter("probe_exporter_snmp_lookup_cache_hits", "SNMP lookup walks served from "
                                         "the lookup cache, by module.", ["module"], registry=None)
        self.lookup_cache_misses = Counter("probe_exporter_snmp_lookup_cache_misses", "SNMP lookup walks the "
                                           "lookup cache could not serve (walked), by module.", ["module"],
                                           registry=None)
        # Module names of the loaded config, so every module's duration series exists from the start.
        self.module_names: Callable[[], Iterable[str]] = lambda: ()

    def collect(self) -> Iterator[Metric]:
        for name in self.module_names():
            self.collection_duration.labels(name)
        for metric in (self.collection_duration, self.request_errors, self.unexpected_pdu_type,
                       self.packet_duration, self.packets, self.retries, self.in_flight, self.lookup_cache_hits,
                       self.lookup_cache_misses):
            yield from metric.collect()


STATS = SnmpStats()
