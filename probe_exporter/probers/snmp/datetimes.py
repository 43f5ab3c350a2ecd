"""Date values as Unix seconds: RFC 2579 DateAndTime, strptime-style patterns (itchyny/timefmt-go's
parse, as ParseDateAndTime uses it) and NTP timestamps. Go's time.Date normalises out-of-range
fields (month 13, deciseconds 10), so the arithmetic below does too, and truncates to seconds.
"""

from __future__ import annotations

import calendar

_NTP_EPOCH_OFFSET = 2208988800


def _unix(year: int, month: int, day: int, hour: int, minute: int, second: int, nanos: int,
          offset_seconds: int) -> int:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = calendar.timegm((year, month, 1, 0, 0, 0)) // 86400 + day - 1
    seconds = days * 86400 + hour * 3600 + minute * 60 + second + nanos // 1_000_000_000
    return seconds - offset_seconds


def date_and_time(raw: bytes) -> float:
    """RFC 2579 DateAndTime: 8 bytes (UTC) or 11 (with `+`/`-`, hours, minutes from UTC)."""
    if len(raw) == 8:
        offset = 0
    elif len(raw) == 11:
        sign = chr(raw[8])
        hours, minutes = raw[9], raw[10]
        # time.Parse("-0700", ...) needs a sign and two-digit fields within range.
        if sign not in "+-" or hours > 24 or minutes > 60:
            raise ValueError(f"error parsing location string: {sign}{hours:02d}{minutes:02d}")
        offset = (hours * 3600 + minutes * 60) * (-1 if sign == "-" else 1)
    else:
        raise ValueError(f"invalid DateAndTime length {len(raw)}")
    year = int.from_bytes(raw[0:2], "big")
    return float(_unix(year, raw[2], raw[3], raw[4], raw[5], raw[6], raw[7] * 100_000_000, offset))


def ntp_timestamp(raw: bytes) -> float:
    if len(raw) < 8:
        raise ValueError(f"invalid NTP timestamp length {len(raw)}")
    return float(int.from_bytes(raw[0:4], "big") - _NTP_EPOCH_OFFSET)


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_COMPOSITES = {"T": "%H:%M:%S", "D": "%m/%d/%y", "F": "%Y-%m-%d", "R": "%H:%M", "r": "%I:%M:%S %p",
               "c": "%a %b %e %H:%M:%S %Y", "v": "%e-%b-%Y", "x": "%m/%d/%y", "X": "%H:%M:%S"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def number(self, width: int, allow_space: bool = False) -> int:
        if allow_space:
            while self.pos < len(self.text) and self.text[self.pos] == " " and width > 1:
                self.pos += 1
                width -= 1
        start = self.pos
        while self.pos < len(self.text) and self.pos - start < width and self.text[self.pos].isdigit():
            self.pos += 1
        if self.pos == start:
            raise ValueError(f"cannot parse {self.text!r}: expected a number at {start}")
        return int(self.text[start:self.pos])

    def name(self, names: list[str]) -> int:
        rest = self.text[self.pos:]
        for full in (True, False):
            for index, candidate in enumerate(names):
                word = candidate if full else candidate[:3]
                if rest[:len(word)].lower() == word.lower():
                    self.pos += len(word)
                    return index
        raise ValueError(f"cannot parse {self.text!r}: expected a name at {self.pos}")

    def literal(self, char: str) -> None:
        if self.pos >= len(self.text) or self.text[self.pos] != char:
            raise ValueError(f"cannot parse {self.text!r}: expected {char!r} at {self.pos}")
        self.pos += 1


def parse_pattern(text: str, pattern: str) -> float:
    """timefmt.Parse(text, pattern).Unix(); UTC unless the pattern has %z/%Z; no trailing input."""
    for key, value in _COMPOSITES.items():
        pattern = pattern.replace("%" + key, value)
    parser = _Parser(text)
    year, month, day, hour, minute, second, nanos, offset = 1900, 1, 1, 0, 0, 0, 0, 0
    pm: bool | None = None
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char != "%" or index + 1 >= len(pattern):
            parser.literal(char)
            index += 1
            continue
        directive = pattern[index + 1]
        index += 2
        if directive == "Y":
            year = parser.number(4)
        elif directive == "y":
            year = parser.number(2)
            year += 1900 if year >= 69 else 2000
        elif directive == "C":
            year = parser.number(2) * 100 + year % 100
        elif directive == "m":
            month = parser.number(2)
        elif directive in ("d", "e"):
            day = parser.number(2, allow_space=directive == "e")
        elif directive == "j":
            day = parser.number(3)
            month = 1
        elif directive in ("H", "k"):
            hour = parser.number(2, allow_space=directive == "k")
        elif directive in ("I", "l"):
            hour = parser.number(2, allow_space=directive == "l")
        elif directive == "M":
            minute = parser.number(2)
        elif directive == "S":
            second = parser.number(2)
        elif directive == "f":
            start = parser.pos
            fraction = parser.number(9)
            nanos = fraction * 10 ** (9 - (parser.pos - start))
        elif directive in ("b", "h", "B"):
            month = parser.name(_MONTHS) + 1
        elif directive in ("a", "A"):
            parser.name(_DAYS)
        elif directive == "p":
            rest = text[parser.pos:parser.pos + 2].upper()
            if rest not in ("AM", "PM"):
                raise ValueError(f"cannot parse {text!r}: expected AM/PM")
            pm = rest == "PM"
            parser.pos += 2
        elif directive == "z":
            offset = _zone_offset(parser)
        elif directive == "Z":
            start = parser.pos
            while parser.pos < len(text) and (text[parser.pos].isalpha()):
                parser.pos += 1
            if text[start:parser.pos] not in ("UTC", "GMT", "Z"):
                if parser.pos == start:
                    offset = _zone_offset(parser)
        elif directive == "%":
            parser.literal("%")
        elif directive in ("n", "t"):
            while parser.pos < len(text) and text[parser.pos].isspace():
                parser.pos += 1
        else:
            parser.literal("%")
            parser.literal(directive)
    if parser.pos != len(text):
        raise ValueError(f"unconverted string: {text[parser.pos:]!r}")
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    return float(_unix(year, month, day, hour, minute, second, nanos, offset))


def _zone_offset(parser: _Parser) -> int:
    text = parser.text
    if parser.pos < len(text) and text[parser.pos] == "Z":
        parser.pos += 1
        return 0
    if parser.pos >= len(text) or text[parser.pos] not in "+-":
        raise ValueError(f"cannot parse {text!r}: expected a time zone offset")
    sign = -1 if text[parser.pos] == "-" else 1
    parser.pos += 1
    hours = parser.number(2)
    if parser.pos < len(text) and text[parser.pos] == ":":
        parser.pos += 1
    minutes = parser.number(2)
    return sign * (hours * 3600 + minutes * 60)
