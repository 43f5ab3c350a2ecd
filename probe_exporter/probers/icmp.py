"""The ICMP prober: one echo request per probe, as blackbox_exporter's prober/icmp.go.

Socket choice as upstream: an unprivileged ICMP datagram socket first (Linux "ping" sockets,
allowed by net.ipv4.ping_group_range; the kernel owns the echo ID and the checksum), a raw socket
as the fallback; `dont_fragment` (IPv4 only) goes straight to a raw socket. The reply is matched
on type, sequence and payload (and ID on raw sockets), from the probed address only. The reply's
TTL / hop limit comes from the IP_RECVTTL / IPV6_RECVHOPLIMIT control message.

`packets: N` (ours, N > 1) sends a burst on the same socket instead, `packet_interval` apart, each
reply matched by ID and sequence, and reports loss, duplicates and round-trip statistics beside the
upstream metrics (docs/probers/icmp-burst.md). With the default of 1 nothing changes.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import HistogramMetricFamily

from probe_exporter.config.blackbox import ICMPProbe
from probe_exporter.exposition import go_float
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.net.addr import resolve_host

PAYLOAD = b"Prometheus Blackbox Exporter"
ECHO_REQUEST_V4, ECHO_REPLY_V4 = 8, 0
ECHO_REQUEST_V6, ECHO_REPLY_V6 = 128, 129
# Linux values; the socket module does not export all of them.
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)

# Tests switch this off to exercise the raw-socket path where ping sockets are allowed.
TRY_UNPRIVILEGED = True

# A process-wide sequence with a random start, so restarted exporters do not probe in step (#411).
# Drawn again in each forked worker: workers inheriting one start would number their echoes in step.
def _new_sequence() -> None:
    global _sequence
    _sequence = itertools.count(int.from_bytes(os.urandom(2), "big"))


_sequence: itertools.count[int]
_new_sequence()
os.register_at_fork(after_in_child=_new_sequence)


def payload(size: int) -> bytes:
    """0 -> the 28-byte marker; N -> N bytes: the marker, zero-padded (or cut)."""
    if size == 0:
        return PAYLOAD
    return (PAYLOAD + bytes(max(size - len(PAYLOAD), 0)))[:size]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(v6: bool, ident: int, seq: int, data: bytes) -> bytes:
    kind = ECHO_REQUEST_V6 if v6 else ECHO_REQUEST_V4
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return header + data  # the kernel fills in the ICMPv6 checksum (it covers a pseudo-header)
    return struct.pack("!BBHHH", kind, 0, checksum(header + data), ident, seq) + data


class _Socket:
    """An ICMP socket and whether it is a raw one."""

    def __init__(self, sock: socket.socket, raw: bool) -> None:
        self.sock = sock
        self.raw = raw


def _open(v6: bool, source: str | None, try_unprivileged: bool, force_raw: bool, log: ProbeLog) -> _Socket:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock: socket.socket | None = None
    raw = True
    if try_unprivileged and not force_raw:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, proto)
            raw = False
        except OSError as err:
            log.debug("Unable to do unprivileged listen on socket, will attempt privileged", err=err.strerror or err)
    if sock is None:
        sock = socket.socket(family, socket.SOCK_RAW, proto)
    try:
        sock.setblocking(False)
        sock.bind((source or ("::" if v6 else "0.0.0.0"), 0))
    except OSError:
        sock.close()
        raise
    return _Socket(sock, raw)


def _set_options(icmp: _Socket, v6: bool, cfg: ICMPProbe, log: ProbeLog) -> bool:
    """TTL / hop limit out, TTL / hop limit control messages in; returns whether the latter works."""
    sock = icmp.sock
    if cfg.ttl > 0:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, cfg.ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, cfg.ttl)
    if cfg.dont_fragment and not v6:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
    try:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    except OSError as err:
        log.debug("Failed to set Control Message for retrieving Hop Limit", err=err.strerror or err)
        return False
    return True


def _echo_reply(packet: bytes, icmp: _Socket, v6: bool, data: bytes) -> tuple[int, int] | None:
    """(ID, sequence) of an echo reply carrying our payload; None for anything else."""
    if icmp.raw and not v6:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4:]  # raw IPv4 sockets hand us the IP header too
    if len(packet) < 8:
        return None
    kind, code, _checksum, reply_id, reply_seq = struct.unpack("!BBHHH", packet[:8])
    if kind != (ECHO_REPLY_V6 if v6 else ECHO_REPLY_V4) or code != 0 or packet[8:] != data:
        return None
    return reply_id, reply_seq


def _reply_matches(packet: bytes, icmp: _Socket, v6: bool, ident: int, seq: int, data: bytes) -> bool:
    reply = _echo_reply(packet, icmp, v6, data)
    # On a ping socket the kernel chose the ID and only hands us our own replies.
    return reply is not None and reply[1] == seq and (not icmp.raw or reply[0] == ident)


def _received(sock: socket.socket, log: ProbeLog) -> Iterator[tuple[bytes, list[tuple[int, int, bytes]], str]]:
    """(packet, control messages, peer address) for each datagram waiting on the socket."""
    while True:
        try:
            packet, ancillary, _flags, peer = sock.recvmsg(65536, socket.CMSG_SPACE(4) * 2)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            # Upstream logs and keeps reading (an ICMP error for an earlier packet, for example).
            log.debug("Error reading from socket", err=err.strerror or err)
            return
        yield packet, ancillary, str(peer[0]).split("%")[0]


def _hop_limit(ancillary: list[tuple[int, int, bytes]], v6: bool) -> int | None:
    for level, kind, value in ancillary:
        if (v6 and level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT) or (
                not v6 and level == socket.IPPROTO_IP and kind == socket.IP_TTL):
            if len(value) >= 4:
                return int(struct.unpack("=i", value[:4])[0])
            if value:
                return value[0]
    return None


async def _wait_for_reply(icmp: _Socket, v6: bool, dst: str, ident: int, seq: int, data: bytes,
                          log: ProbeLog) -> int | None:
    """Read until our echo reply arrives; returns its hop limit (None when not reported)."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[int | None] = loop.create_future()
    sock = icmp.sock

    def readable() -> None:
        if found.done():
            return
        for packet, ancillary, peer in _received(sock, log):
            if peer == dst.split("%")[0] and _reply_matches(packet, icmp, v6, ident, seq, data):
                found.set_result(_hop_limit(ancillary, v6))
                return

    loop.add_reader(sock.fileno(), readable)
    try:
        return await found
    finally:
        loop.remove_reader(sock.fileno())


@dataclass
class Burst:
    """What one burst sent and got back: send times and round-trip times by sequence number."""

    ident: int
    sent_at: dict[int, float] = field(default_factory=dict)
    # Requests the local stack refused (a firewall drop, no route): sent as far as loss goes, never answered.
    refused: int = 0
    first_refusal: str = ""
    rtts: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    hop_limit: int | None = None
    replied: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, reply: tuple[int, int] | None, received: float, ancillary: list[tuple[int, int, bytes]],
             v6: bool) -> None:
        if reply is None or reply[0] != self.ident or reply[1] not in self.sent_at:
            return
        seq = reply[1]
        if seq in self.rtts:
            self.duplicates += 1
            return
        self.rtts[seq] = received - self.sent_at[seq]
        if self.hop_limit is None:
            self.hop_limit = _hop_limit(ancillary, v6)
        self.replied.set()

    def all_answered(self) -> bool:
        return len(self.rtts) == len(self.sent_at) - self.refused


# Replies are awaited until this much before the probe deadline (at most 10% of the timeout), so
# the probe can still report what it measured instead of being cut off by the deadline.
REPORT_MARGIN_SECONDS = 0.05


async def _run_burst(icmp: _Socket, v6: bool, dst: str, cfg: ICMPProbe, deadline: float, log: ProbeLog) -> Burst:
    """Send up to cfg.packets echo requests packet_interval apart and collect their replies.

    The first packet always goes out, as the single echo does; a later one only while half an
    interval is left for its reply before the (reporting) deadline: one sent later could only count
    as lost."""
    loop = asyncio.get_running_loop()
    sock = icmp.sock
    # A ping socket's ID is its local "port", chosen by the kernel at bind; it rewrites ours to it.
    burst = Burst(ident=random.randrange(1 << 16) if icmp.raw else sock.getsockname()[1])
    data = payload(cfg.payload_size)
    first_seq = next(_sequence)
    for _ in range(cfg.packets - 1):  # keep the process-wide sequence unique across probes
        next(_sequence)
    reply_deadline = deadline - min(REPORT_MARGIN_SECONDS, 0.1 * max(deadline - time.monotonic(), 0.0))
    log.debug("Creating ICMP packets", packets=cfg.packets, seq=first_seq & 0xFFFF, id=burst.ident,
              privileged=icmp.raw)

    def readable() -> None:
        for packet, ancillary, peer in _received(sock, log):
            if peer == dst.split("%")[0]:
                burst.take(_echo_reply(packet, icmp, v6, data), time.monotonic(), ancillary, v6)

    loop.add_reader(sock.fileno(), readable)
    try:
        start = time.monotonic()
        for index in range(cfg.packets):
            scheduled = start + index * cfg.packet_interval
            if index and scheduled + cfg.packet_interval / 2 > reply_deadline:
                log.info("Stopped the burst before the deadline", packets_sent=len(burst.sent_at),
                         packets=cfg.packets)
                break
            await asyncio.sleep(max(scheduled - time.monotonic(), 0.0))
            seq = (first_seq + index) & 0xFFFF
            burst.sent_at[seq] = time.monotonic()
            try:
                sock.sendto(echo_request(v6, burst.ident, seq, data), (dst, 0))
            except OSError as err:
                burst.refused += 1
                burst.first_refusal = burst.first_refusal or err.strerror or str(err)
                log.debug("Error writing to socket", seq=seq, err=err.strerror or str(err))
        if burst.refused == len(burst.sent_at):  # nothing got out (no route, say): no reply to wait for
            log.error("Error writing to socket", err=burst.first_refusal)
            return burst
        log.debug("Waiting for reply packets")
        while not burst.all_answered() and (remaining := reply_deadline - time.monotonic()) > 0:
            burst.replied.clear()
            try:
                await asyncio.wait_for(burst.replied.wait(), remaining)
            except TimeoutError:
                break
        return burst
    finally:
        loop.remove_reader(sock.fileno())


def _report_burst(burst: Burst, cfg: ICMPProbe, metrics: ProbeMetrics) -> None:
    metrics.set("probe_icmp_packets_sent", "Number of ICMP echo requests sent by the burst", len(burst.sent_at))
    metrics.set("probe_icmp_packets_received", "Number of ICMP echo requests answered (duplicates not counted)",
                len(burst.rtts))
    metrics.set("probe_icmp_duplicate_packets", "Number of duplicate ICMP echo replies received",
                burst.duplicates)
    rtts = list(burst.rtts.values())
    if rtts:
        mean = sum(rtts) / len(rtts)
        metrics.set("probe_icmp_rtt_min_seconds", "Shortest round-trip time of the burst in seconds", min(rtts))
        metrics.set("probe_icmp_rtt_max_seconds", "Longest round-trip time of the burst in seconds", max(rtts))
        metrics.set("probe_icmp_rtt_mean_seconds", "Mean round-trip time of the burst in seconds", mean)
        metrics.set("probe_icmp_rtt_stddev_seconds",
                    "Population standard deviation of the burst's round-trip times in seconds",
                    math.sqrt(sum((rtt - mean) ** 2 for rtt in rtts) / len(rtts)))
    buckets = [(go_float(bound), sum(rtt <= bound for rtt in rtts)) for bound in cfg.rtt_buckets]
    buckets.append(("+Inf", len(rtts)))
    metrics.add_family(HistogramMetricFamily("probe_icmp_rtt_seconds", "Round-trip times of the burst in seconds",
                                             buckets=buckets, sum_value=sum(rtts)))


def _report_hop_limit(hop_limit: int | None, wanted: bool, metrics: ProbeMetrics, log: ProbeLog) -> None:
    if hop_limit is not None and wanted:
        metrics.gauge("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)").set(hop_limit)
    else:
        log.debug("Cannot get Hop Limit from the received packet. 'probe_icmp_reply_hop_limit' will be missing.")


async def probe_icmp(ctx: ProbeContext) -> bool:
    deadline = time.monotonic() + ctx.timeout
    metrics, log = ctx.metrics, ctx.log
    cfg: ICMPProbe = ctx.module.icmp
    durations = metrics.gauge_vec("probe_icmp_duration_seconds", "Duration of icmp request by phase", ["phase"])
    for phase in ("resolve", "setup", "rtt"):
        durations.labels(phase)
    ip = await resolve_host(ctx.target, cfg, metrics, log, durations)
    if ip is None:
        return False
    v6 = ":" in ip
    if cfg.source_ip_address:
        log.debug("Using source address", srcIP=cfg.source_ip_address)

    setup_start = time.monotonic()
    log.debug("Creating socket")
    try:
        # DF needs IP-level control upstream only has on a raw socket; it is ignored for IPv6.
        icmp = _open(v6, cfg.source_ip_address, TRY_UNPRIVILEGED, cfg.dont_fragment and not v6, log)
    except OSError as err:
        log.error("Error listening to socket", err=err.strerror or str(err))
        return False
    try:
        hop_limit_wanted = _set_options(icmp, v6, cfg, log)
        if cfg.packets > 1:
            durations.labels("setup").add(time.monotonic() - setup_start)
            burst = await _run_burst(icmp, v6, ip, cfg, deadline, log)
            _report_burst(burst, cfg, metrics)
            if not burst.rtts:
                if burst.refused < len(burst.sent_at):
                    log.error("Timeout reading from socket",
                              err=f"no echo reply to any of {len(burst.sent_at)} packets before the probe deadline")
                return False
            # Upstream's one round trip becomes the burst's mean, so its rtt phase stays comparable.
            durations.labels("rtt").add(sum(burst.rtts.values()) / len(burst.rtts))
            _report_hop_limit(burst.hop_limit, hop_limit_wanted, metrics, log)
            log.debug("Found matching reply packets", received=len(burst.rtts), sent=len(burst.sent_at))
            return True
        ident = random.randrange(1 << 16)
        seq = next(_sequence) & 0xFFFF
        data = payload(cfg.payload_size)
        packet = echo_request(v6, ident, seq, data)
        log.debug("Creating ICMP packet", seq=seq, id=ident, privileged=icmp.raw)
        durations.labels("setup").add(time.monotonic() - setup_start)

        log.debug("Writing out packet")
        rtt_start = time.monotonic()
        try:
            icmp.sock.sendto(packet, (ip, 0))
        except OSError as err:
            log.error("Error writing to socket", err=err.strerror or str(err))
            return False
        log.debug("Waiting for reply packets")
        try:
            hop_limit = await _wait_for_reply(icmp, v6, ip, ident, seq, data, log)
        except asyncio.CancelledError:
            log.error("Timeout reading from socket", err="no echo reply before the probe deadline")
            raise
        durations.labels("rtt").add(time.monotonic() - rtt_start)
        _report_hop_limit(hop_limit, hop_limit_wanted, metrics, log)
        log.debug("Found matching reply packet")
        return True
    finally:
        icmp.sock.close()


PROBER = Prober(name="icmp", probe=probe_icmp, config_model=ICMPProbe)
