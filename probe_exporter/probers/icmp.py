"""The ICMP prober: one echo request per probe, as blackbox_exporter's prober/icmp.go.

Socket choice as upstream: an unprivileged ICMP datagram socket first (Linux "ping" sockets,
allowed by net.ipv4.ping_group_range; the kernel owns the echo ID and the checksum), a raw socket
as the fallback; `dont_fragment` (IPv4 only) goes straight to a raw socket. The reply is matched
on type, sequence and payload (and ID on raw sockets), from the probed address only. The reply's
TTL / hop limit comes from the IP_RECVTTL / IPV6_RECVHOPLIMIT control message.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import struct
import time

from probe_exporter.config.blackbox import ICMPProbe
from probe_exporter.logs import ProbeLog
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.hostport import resolve_host

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
_sequence = itertools.count(random.randrange(1 << 16))


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


def _reply_matches(packet: bytes, icmp: _Socket, v6: bool, ident: int, seq: int, data: bytes) -> bool:
    if icmp.raw and not v6:
        if len(packet) < 20:
            return False
        packet = packet[(packet[0] & 0x0F) * 4:]  # raw IPv4 sockets hand us the IP header too
    if len(packet) < 8:
        return False
    kind, code, _checksum, reply_id, reply_seq = struct.unpack("!BBHHH", packet[:8])
    if kind != (ECHO_REPLY_V6 if v6 else ECHO_REPLY_V4) or code != 0 or reply_seq != seq:
        return False
    # On a ping socket the kernel chose the ID and only hands us our own replies.
    if icmp.raw and reply_id != ident:
        return False
    return packet[8:] == data


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
        while not found.done():
            try:
                packet, ancillary, _flags, peer = sock.recvmsg(65536, socket.CMSG_SPACE(4) * 2)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                # Upstream logs and keeps reading (an ICMP error for an earlier packet, for example).
                log.debug("Error reading from socket", err=err.strerror or err)
                return
            if str(peer[0]).split("%")[0] != dst.split("%")[0]:
                continue
            if _reply_matches(packet, icmp, v6, ident, seq, data):
                found.set_result(_hop_limit(ancillary, v6))

    loop.add_reader(sock.fileno(), readable)
    try:
        return await found
    finally:
        loop.remove_reader(sock.fileno())


async def probe_icmp(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    cfg: ICMPProbe = ctx.module.icmp
    durations = metrics.gauge_vec("probe_icmp_duration_seconds", "Duration of icmp request by phase", ["phase"])
    for phase in ("resolve", "setup", "rtt"):
        durations.labels(phase)
    resolved = await resolve_host(ctx.target, cfg, metrics, log)
    if resolved is None:
        return False
    ip, lookup_time = resolved
    durations.labels("resolve").add(lookup_time)
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
        if hop_limit is not None and hop_limit_wanted:
            metrics.gauge("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)").set(hop_limit)
        else:
            log.debug("Cannot get Hop Limit from the received packet. 'probe_icmp_reply_hop_limit' will be missing.")
        log.debug("Found matching reply packet")
        return True
    finally:
        icmp.sock.close()


PROBER = Prober(name="icmp", probe=probe_icmp, config_model=ICMPProbe)
