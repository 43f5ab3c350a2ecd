"""pyasn1 varbind values to the plain Python values gosnmp would hand the collector.

One dict lookup on the tag set per varbind; no prettyPrint, no MIB. The kind decides rendering
(a Counter64 wraps, an IpAddress is already a string, an OID loses its leading dot).
"""

from __future__ import annotations

import struct
from typing import Any

from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905

# Kinds, as gosnmp's Asn1BER types matter to the collector.
INTEGER = 1  # signed int
UNSIGNED = 2  # Counter32, Gauge32/Unsigned32, TimeTicks
COUNTER64 = 3
OCTETS = 4  # OctetString, and Opaque that is not a float
OID = 5  # dotted string without the leading dot
IPADDRESS = 6  # dotted string ("" when empty)
FLOAT = 7  # Opaque float, widened to float64
DOUBLE = 8  # Opaque double
NULL = 9
NO_SUCH = 10  # noSuchObject / noSuchInstance
END_OF_MIB = 11

Value = tuple[int, Any]


def _integer(value: Any) -> Value:
    return INTEGER, int(value)


def _unsigned(value: Any) -> Value:
    return UNSIGNED, int(value)


def _counter64(value: Any) -> Value:
    return COUNTER64, int(value)


def _octets(value: Any) -> Value:
    return OCTETS, value.asOctets()


def _oid(value: Any) -> Value:
    return OID, ".".join(map(str, value.asTuple()))


def _ipaddress(value: Any) -> Value:
    raw = value.asOctets()
    return IPADDRESS, ".".join(map(str, raw)) if raw else ""


def opaque_value(raw: bytes) -> Value:
    """An Opaque's content: a wrapped float (RFC draft, net-snmp: 9f 78 04 <float32> or 9f 79 08
    <float64>) as a number, anything else as bytes. Shared by the pysnmp and the fast BER path."""
    if len(raw) == 7 and raw[:3] == b"\x9f\x78\x04":
        return FLOAT, struct.unpack(">f", raw[3:])[0]
    if len(raw) == 11 and raw[:3] == b"\x9f\x79\x08":
        return DOUBLE, struct.unpack(">d", raw[3:])[0]
    return OCTETS, raw


def _opaque(value: Any) -> Value:
    return opaque_value(value.asOctets())


def _null(value: Any) -> Value:
    return NULL, None


def _no_such(value: Any) -> Value:
    return NO_SUCH, None


def _end_of_mib(value: Any) -> Value:
    return END_OF_MIB, None


_DECODERS = {
    rfc1902.Integer32.tagSet: _integer,
    rfc1902.OctetString.tagSet: _octets,
    rfc1902.ObjectIdentifier.tagSet: _oid,
    rfc1902.IpAddress.tagSet: _ipaddress,
    rfc1902.Counter32.tagSet: _unsigned,
    rfc1902.Gauge32.tagSet: _unsigned,
    rfc1902.TimeTicks.tagSet: _unsigned,
    rfc1902.Opaque.tagSet: _opaque,
    rfc1902.Counter64.tagSet: _counter64,
    rfc1902.Bits.tagSet: _octets,
    rfc1905.NoSuchObject.tagSet: _no_such,
    rfc1905.NoSuchInstance.tagSet: _no_such,
    rfc1905.EndOfMibView.tagSet: _end_of_mib,
}
_NULL_TAGS = {univ.Null.tagSet}


def decode(value: Any) -> Value:
    decoder = _DECODERS.get(value.tagSet)
    if decoder is not None:
        return decoder(value)
    if value.tagSet not in _NULL_TAGS:
        from probe_exporter.probers.snmp import stats

        stats.STATS.unexpected_pdu_type.inc()
    return NULL, None


def oid_text(oid: tuple[int, ...]) -> str:
    return ".".join(map(str, oid))


def parse_oid(text: str) -> tuple[int, ...]:
    """A config OID (`1.3.6.1.2.1.2`, leading dot allowed) as unsigned 32-bit arcs."""
    arcs = tuple(int(arc) for arc in text.strip().lstrip(".").split("."))
    if not arcs or any(arc < 0 or arc > 0xFFFFFFFF for arc in arcs):
        raise ValueError(f"invalid OID {text!r}")
    return arcs
