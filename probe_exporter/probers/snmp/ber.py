"""A fast BER codec for SNMPv1/v2c: requests encoded by hand, responses decoded straight to
(oid tuple, (kind, value)).

pyasn1 builds and clones a typed object per varbind field (60-85 µs of CPU per varbind with
pysnmp on top, most of an if_mib scrape); this reads the few shapes a response can have with
slicing and int.from_bytes (~1.9 µs per varbind), and the varbind list in C where the optional
extension `_berfast` was built (~0.5 µs; the same results and errors, checked on mutated packets).
Verified varbind-for-varbind against pysnmp's own encoder and decoder (tests/probers/snmp/test_ber.py,
bench/snmp/bench_decode.py). Used by the community request path (community.py) and, inside the USM
envelope, by SNMPv3 (v3.py).
"""

from __future__ import annotations

from collections.abc import Callable

from probe_exporter.probers.snmp import stats
from probe_exporter.probers.snmp.values import (
    COUNTER64,
    END_OF_MIB,
    INTEGER,
    IPADDRESS,
    NO_SUCH,
    NULL,
    OCTETS,
    OID,
    UNSIGNED,
    Value,
    opaque_value,
)

try:
    from probe_exporter.probers.snmp import _berfast
except ImportError:  # built without a C compiler: varbinds are read in Python
    _berfast = None  # type: ignore[assignment]


class BerError(ValueError):
    pass


GET, GET_NEXT, GET_BULK = 0xA0, 0xA1, 0xA5
RESPONSE, REPORT = 0xA2, 0xA8


# Bytes of one OID arc, as gosnmp's parseBase128Int allows (35 bits; SNMP arcs are 32-bit).
_MAX_ARC_BYTES = 5


def _length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 4:
        raise BerError("unsupported BER length")
    return int.from_bytes(data[pos:pos + count], "big"), pos + count


def tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content)."""
    if pos >= len(data):
        raise BerError("truncated message")
    tag = data[pos]
    length, start = _length(data, pos + 1)
    end = start + length
    if end > len(data):
        raise BerError("truncated message")
    return tag, start, end


def decode_oid(raw: bytes) -> tuple[int, ...]:
    if not raw:
        raise BerError("empty OID")
    if raw.isascii():  # every arc below 128, one byte each: most OIDs of a walk, at C speed
        first = raw[0]
        if first < 40:
            return (0, *raw)
        return (1, first - 40, *raw[1:]) if first < 80 else (2, first - 80, *raw[1:])
    if raw[-1] & 0x80:
        raise BerError("truncated OID")
    arcs: list[int] = []
    value = 0
    continued = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            # gosnmp's bound; an unbounded arc costs quadratic time, on the event loop.
            continued += 1
            if continued >= _MAX_ARC_BYTES:
                raise BerError("OID arc too large")
        else:
            arcs.append(value)
            value = continued = 0
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])


def signed(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True) if raw else 0


def _unsigned(raw: bytes) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def _value(tag: int, raw: bytes) -> Value:
    # The common types first: counters and gauges fill most tables.
    if tag == 0x41 or tag == 0x42 or tag == 0x43:  # Counter32, Gauge32/Unsigned32, TimeTicks
        return UNSIGNED, int.from_bytes(raw, "big") & 0xFFFFFFFF
    if tag == 0x02:
        return INTEGER, signed(raw)
    if tag == 0x04:
        return OCTETS, raw
    if tag == 0x06:
        return OID, ".".join(map(str, decode_oid(raw)))
    if tag == 0x46:
        return COUNTER64, _unsigned(raw) & 0xFFFFFFFFFFFFFFFF
    if tag == 0x40:
        return IPADDRESS, ".".join(map(str, raw)) if raw else ""
    if tag == 0x44:
        return opaque_value(raw)
    if tag == 0x05:
        return NULL, None
    if tag in (0x80, 0x81):
        return NO_SUCH, None
    if tag == 0x82:
        return END_OF_MIB, None
    # A type snmp_exporter does not know either (NsapAddress, UInteger32...): counted, rendered "".
    stats.STATS.unexpected_pdu_type.inc()
    return NULL, None


def decode_pdu(data: bytes, pos: int) -> tuple[int, int, int, int, list[tuple[tuple[int, ...], Value]]]:
    """(tag, request-id, error-status, error-index, varbinds) of the PDU at `pos`."""
    tag, pos, end = tlv(data, pos)
    fields = []
    for _ in range(3):
        _, start, stop = tlv(data, pos)
        fields.append(signed(data[start:stop]))
        pos = stop
    _, pos, end = tlv(data, pos)
    return tag, fields[0], fields[1], fields[2], _varbinds(data, pos, end)


def _varbinds_python(data: bytes, pos: int, end: int) -> list[tuple[tuple[int, ...], Value]]:
    """The varbind list's content, data[pos:end]; short-form lengths read inline (the hot loop)."""
    varbinds: list[tuple[tuple[int, ...], Value]] = []
    append = varbinds.append
    while pos < end:
        length = data[pos + 1]
        if length < 0x80:
            vb_start = pos + 2
            vb_end = vb_start + length
        else:
            _, vb_start, vb_end = tlv(data, pos)
        length = data[vb_start + 1]
        if length < 0x80:
            oid_start = vb_start + 2
            oid_end = oid_start + length
        else:
            _, oid_start, oid_end = tlv(data, vb_start)
        value_tag = data[oid_end]
        length = data[oid_end + 1]
        if length < 0x80:
            value_start = oid_end + 2
            value_end = value_start + length
        else:
            _, value_start, value_end = tlv(data, oid_end)
        if value_end > vb_end or vb_end > end:
            raise BerError("truncated message")
        append((decode_oid(data[oid_start:oid_end]), _value(value_tag, data[value_start:value_end])))
        pos = vb_end
    return varbinds


# The C reader where it was built (it hands the values it does not read itself back to _value).
_varbinds: Callable[[bytes, int, int], list[tuple[tuple[int, ...], Value]]] = _varbinds_python
if _berfast is not None:
    _berfast.configure(BerError, _value, INTEGER, UNSIGNED, COUNTER64, OCTETS, OID, IPADDRESS, NULL, NO_SUCH,
                       END_OF_MIB)
    _varbinds = _berfast.varbinds


def varbind_reader() -> str:
    """Which reader decodes varbind lists: "c" (the `_berfast` extension) or "python"."""
    return "c" if _varbinds is not _varbinds_python else "python"


def decode_response(data: bytes) -> tuple[int, bytes, int, int, int, list[tuple[tuple[int, ...], Value]]]:
    """(version, community, request-id, error-status, error-index, varbinds) of a v1/v2c Response."""
    tag, pos, _ = tlv(data, 0)
    if tag != 0x30:
        raise BerError("not a SEQUENCE")
    tag, start, stop = tlv(data, pos)
    version = signed(data[start:stop])
    tag, start, stop = tlv(data, stop)
    community = data[start:stop]
    if stop >= len(data) or data[stop] != RESPONSE:
        raise BerError(f"not a Response PDU (tag 0x{data[stop] if stop < len(data) else 0:02x})")
    _, request_id, error_status, error_index, varbinds = decode_pdu(data, stop)
    return version, community, request_id, error_status, error_index, varbinds


# --- requests ----------------------------------------------------------------------------------------



def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def encode_tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:  # most fields of a request: no call for the length
        return bytes((tag, length)) + content
    return bytes((tag,)) + _encode_length(length) + content


def encode_int(value: int) -> bytes:
    size = value.bit_length() // 8 + 1
    return bytes((0x02, size)) + value.to_bytes(size, "big", signed=True)


def encode_oid(oid: tuple[int, ...]) -> bytes:
    if len(oid) < 2:
        oid = (*oid, 0) if oid else (0, 0)
    first = oid[0] * 40 + oid[1]
    if first < 0x80 and (len(oid) == 2 or max(oid[2:]) < 0x80):  # one byte an arc: most OIDs asked for
        return bytes((first, *oid[2:]))
    out = bytearray()
    for arc in (first, *oid[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def encode_pdu(pdu_type: int, request_id: int, oids: list[tuple[int, ...]], max_repetitions: int = 0) -> bytes:
    """A request PDU with NULL values; GETBULK carries non-repeaters 0."""
    varbinds = b"".join(encode_tlv(0x30, encode_tlv(0x06, encode_oid(oid)) + b"\x05\x00") for oid in oids)
    second, third = (0, max_repetitions) if pdu_type == GET_BULK else (0, 0)
    return encode_tlv(pdu_type, encode_int(request_id) + encode_int(second) + encode_int(third)
                      + encode_tlv(0x30, varbinds))


def encode_request(version: int, community: bytes, pdu_type: int, request_id: int, oids: list[tuple[int, ...]],
                   max_repetitions: int = 0) -> bytes:
    """A v1 (version 0) or v2c (version 1) request."""
    pdu = encode_pdu(pdu_type, request_id, oids, max_repetitions)
    return encode_tlv(0x30, encode_int(version) + encode_tlv(0x04, community) + pdu)
