"""--snmp.debug-packets and `snmp_debug_packets=true`: every SNMP packet hex-dumped into the probe's
debug log, with what could give a secret away masked as `**` bytes: the community of a v1/v2c
message, and the HMAC of an SNMPv3 message (msgAuthenticationParameters: with the packet it allows an
offline guess of the auth password). Passwords and keys themselves never go on the wire; an
encrypted scoped PDU stays as sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probe_exporter.probers.snmp import ber, v3

PacketLog = Callable[..., None]
MASK = "**"


def _secret_span(data: bytes) -> tuple[int, int]:
    """Where the community (v1/v2c) or the v3 HMAC lies in `data`; raises BerError and the like."""
    if v3.peek_msg_id(data) is not None:
        incoming = v3.decode_message(data)
        return incoming.mac_offset, incoming.mac_offset + len(incoming.auth_params)
    tag, pos, _ = ber.tlv(data, 0)
    if tag != 0x30:
        raise ber.BerError("not a SEQUENCE")
    _, _, stop = ber.tlv(data, pos)  # version
    tag, start, stop = ber.tlv(data, stop)
    if tag != 0x04:
        raise ber.BerError("no community")
    return start, stop


def masked_hex(data: bytes) -> str:
    """Space-separated hex of `data` with the secret span masked; an undecodable packet is masked whole
    (we cannot tell where its secret would be)."""
    try:
        start, stop = _secret_span(data)
    except (ber.BerError, IndexError, ValueError):
        start, stop = 0, len(data)
    return " ".join(MASK if start <= i < stop else f"{byte:02x}" for i, byte in enumerate(data))


def peer_text(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def log_packet(log: PacketLog, direction: str, address: tuple[Any, ...], data: bytes) -> None:
    peer = {"to": peer_text(address)} if direction == "sent" else {"source": peer_text(address)}
    log(f"SNMP packet {direction}", **peer, bytes=len(data), hex=masked_hex(data))
