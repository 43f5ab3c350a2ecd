"""String renderings of SNMP values and index OIDs, byte-for-byte as snmp_exporter's collector.

`index_as_string` is upstream's indexOidsAsString (it also renders byte values, with the bytes
as arcs); `value_as_string` is pduValueAsString.
"""

from __future__ import annotations

import re
import struct
from decimal import Decimal

from probe_exporter.probers.snmp.plan import COMBINED_TYPES
from probe_exporter.probers.snmp.values import (
    COUNTER64,
    DOUBLE,
    FLOAT,
    INTEGER,
    IPADDRESS,
    NULL,
    OCTETS,
    OID,
    UNSIGNED,
    Value,
)

# A length arc can claim billions of (zero-padded) bytes; no real index is longer than this.
MAX_PADDED = 4096
_INVALID_RUN = re.compile("[\udc80-\udcff]+")


def valid_utf8(raw: bytes) -> str:
    """Go's strings.ToValidUTF8(s, "\uFFFD"): each run of invalid bytes becomes one U+FFFD."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _INVALID_RUN.sub("\ufffd", raw.decode("utf-8", "surrogateescape"))


def _split(arcs: tuple[int, ...], count: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """splitOid: the first `count` arcs (zero-padded) and the rest."""
    count = min(count, MAX_PADDED)
    head = arcs[:count]
    if len(head) < count:
        head = head + (0,) * (count - len(head))
    return head, arcs[count:]


def _bytes_of(arcs: tuple[int, ...]) -> bytes:
    return bytes(arc & 0xFF for arc in arcs)


def index_as_string(arcs: tuple[int, ...], kind: str, fixed_size: int = 0, implied: bool = False,
                    enum_values: dict[int, str] | None = None) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """(label value, arcs consumed, arcs left) for one index of type `kind`."""
    mapping = COMBINED_TYPES.get(kind)
    if mapping is not None:
        if kind == "InetAddressMissingSize":
            sub, rest = _split(arcs, 1)
        else:
            sub, rest = _split(arcs, 2)
        mapped = mapping.get(sub[0])
        if mapped is not None:
            text, used, remaining = index_as_string(rest, mapped, 0, False, enum_values)
            return text, sub + used, remaining
        if kind == "InetAddressMissingSize":
            return index_as_string(arcs, "OctetString", 0, True, enum_values)
        return index_as_string(arcs, "OctetString", sub[1] + 2, False, enum_values)
    if kind in ("Integer32", "Integer", "gauge", "counter"):
        sub, rest = _split(arcs, 1)
        return str(sub[0]), sub, rest
    if kind == "PhysAddress48":
        sub, rest = _split(arcs, 6)
        return ":".join(f"{arc:02X}" for arc in sub), sub, rest
    if kind in ("OctetString", "DisplayString"):
        length = len(arcs) if implied else fixed_size
        prefix: tuple[int, ...] = ()
        if length == 0:
            prefix, arcs = _split(arcs, 1)
            length = prefix[0]
        content, rest = _split(arcs, length)
        sub = prefix + content
        raw = _bytes_of(content)
        if kind == "DisplayString":
            return valid_utf8(raw), sub, rest
        return ("0x" + raw.hex().upper()) if raw else "", sub, rest
    if kind == "InetAddressIPv4":
        sub, rest = _split(arcs, 4)
        return ".".join(map(str, sub)), sub, rest
    if kind == "InetAddressIPv6":
        sub, rest = _split(arcs, 16)
        return ":".join(f"{sub[i]:02X}{sub[i + 1]:02X}" for i in range(0, 16, 2)), sub, rest
    if kind == "EnumAsInfo":
        sub, rest = _split(arcs, 1)
        name = (enum_values or {}).get(sub[0])
        return (name if name is not None else str(sub[0])), sub, rest
    # Upstream panics here; the loader rejects unknown index types, and a byte value with a
    # non-string type (a lookup typed DateAndTime, say) is shown as hex rather than crash.
    return index_as_string(arcs, "OctetString", len(arcs), False, enum_values)


def _go_float_f(value: float, bits: int) -> str:
    """strconv.FormatFloat(v, 'f', -1, bits): shortest round-trip digits, never an exponent."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if bits == 32:
        packed = struct.pack(">f", value)
        for precision in range(1, 10):
            text = f"{value:.{precision}g}"
            if struct.pack(">f", float(text)) == packed:
                break
    else:
        text = repr(value)
    formatted = format(Decimal(text), "f")
    if "." in formatted:
        formatted = formatted.rstrip("0").rstrip(".")
    return formatted


def value_as_string(value: Value, kind: str, display_hint: str = "") -> str:
    """pduValueAsString: how a PDU value reads as a label or string metric of type `kind`."""
    tag, data = value
    if tag == OCTETS:
        if kind in ("", "Bits"):
            kind = "OctetString"
        if display_hint and kind == "OctetString":
            hinted = apply_display_hint(display_hint, data)
            if hinted is not None:
                return valid_utf8(hinted)
        if kind in ("OctetString", "DisplayString"):
            if kind == "DisplayString":
                return valid_utf8(data)
            return ("0x" + data.hex().upper()) if data else ""
        text, _, _ = index_as_string(tuple(data), kind)
        return text
    if tag in (INTEGER, UNSIGNED, COUNTER64):
        return str(data)
    if tag == OID or tag == IPADDRESS:
        return data  # type: ignore[no-any-return]
    if tag == FLOAT:
        return _go_float_f(data, 32)
    if tag == DOUBLE:
        return _go_float_f(data, 64)
    if tag == NULL:
        return ""
    return str(data)


def display_string(value: Value) -> str:
    return value_as_string(value, "DisplayString")


def as_int(value: Value) -> int:
    """gosnmp.ToBigInt(v).Int64(): numbers as themselves, a decimal Go string parsed, else 0."""
    tag, data = value
    if tag in (INTEGER, UNSIGNED, COUNTER64):
        return int(data)
    if tag in (FLOAT, DOUBLE):
        return int(data)
    if tag in (OID, IPADDRESS):
        try:
            return int(data, 10)
        except ValueError:
            return 0
    return 0


def apply_display_hint(hint: str, data: bytes) -> bytes | None:
    """An RFC 2579 DISPLAY-HINT (octet-format) applied to `data`, or None if the hint cannot be
    used (then the caller falls back to hex, as snmp_exporter does).

    Each specification is `[*]<length><d|x|o|a|t>[separator][terminator]`; the last one repeats
    until the data is used up, and no separator is written after the last byte.
    """
    if not hint or not data:
        return None
    out = bytearray()
    position = 0  # in data
    cursor = 0  # in hint
    last_start, last_consumes = 0, False
    while position < len(data):
        if cursor >= len(hint):
            if not last_consumes:
                return None
            cursor = last_start
        start = cursor
        star = hint[cursor] == "*"
        cursor += star
        digits_start = cursor
        while cursor < len(hint) and hint[cursor].isdigit():
            cursor += 1
        if cursor == digits_start or cursor >= len(hint) or hint[cursor] not in "dxoat":
            return None
        take, kind = int(hint[digits_start:cursor]), hint[cursor]
        cursor += 1
        separator = terminator = None
        if cursor < len(hint) and not hint[cursor].isdigit() and hint[cursor] != "*":
            separator, cursor = hint[cursor].encode(), cursor + 1
        if star and cursor < len(hint) and not hint[cursor].isdigit() and hint[cursor] != "*":
            terminator, cursor = hint[cursor].encode(), cursor + 1
        last_start, last_consumes = start, take > 0 or star
        repeat = 1
        if star:
            repeat, position = data[position], position + 1
        done = 0
        while done < repeat and position < len(data):
            chunk = data[position:position + take]
            if kind in "do":
                if len(chunk) > 8:
                    return None
                number = int.from_bytes(chunk, "big") if chunk else 0
                out += (str(number) if kind == "d" else format(number, "o")).encode()
            elif kind == "x":
                out += chunk.hex().upper().encode()
            else:
                out += chunk
            position += len(chunk)
            if separator and position < len(data) and (terminator is None or done != repeat - 1):
                out += separator
            done += 1
        if terminator and position < len(data):
            out += terminator
    return bytes(out)
