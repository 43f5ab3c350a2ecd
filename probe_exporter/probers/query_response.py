"""The `query_response` dialogue shared by the tcp and unix probers (blackbox's query_response.go).

Semantics kept on purpose: `expect` is an RE2 search over one *line* at a time (`\\n`-split,
trailing `\\r` dropped, 64 KiB maximum, like Go's bufio.Scanner), lines are read until one
matches; `send` gets `\\n` appended and, after an `expect`, is expanded with Go's
Regexp.Expand (`$1`, `${1}`, `$name`, `$$`) - never Python's `\\1`; `expect_bytes` is one
read of exactly that many bytes; `starttls` upgrades the connection in place.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from probe_exporter.config.blackbox import QueryResponse
from probe_exporter.logs import ProbeLog
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.neterrors import describe_os_error

# bufio.MaxScanTokenSize: a line (with its newline) must fit in 64 KiB.
MAX_LINE = 64 * 1024
# Ours, not upstream's: what one probe reads in lines before giving up, and how many of them the
# probe's log keeps. A peer streaming lines that never match costs bounded memory, not a deadline's worth.
MAX_DIALOGUE_BYTES = 4 * 1024 * 1024
MAX_LOGGED_LINES = 100


class LineTooLong(Exception):
    pass


class DialogueTooLong(Exception):
    pass


def _is_name_char(char: str) -> bool:
    return char.isalpha() or char.isdigit() or char == "_"


def _extract(template: bytes, pos: int) -> tuple[str, int] | None:
    """The group reference after a `$` at template[pos:]: (name, end) or None if malformed."""
    brace = pos < len(template) and template[pos:pos + 1] == b"{"
    start = pos + 1 if brace else pos
    text = template[start:].decode("utf-8", errors="replace")
    length = 0
    for char in text:
        if not _is_name_char(char):
            break
        length += 1
    if length == 0:
        return None
    name = text[:length]
    end = start + len(name.encode("utf-8", errors="replace"))
    if brace:
        if template[end:end + 1] != b"}":
            return None
        end += 1
    return name, end


def _group_number(name: str) -> int:
    """Go's rule: all ASCII digits, no leading zero, below 1e8; otherwise -1 (a named group)."""
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0") or len(name) > 8:
        return -1
    return int(name)


def go_expand(template: bytes, line: bytes, spans: list[tuple[int, int]], names: dict[str, int]) -> bytes:
    """Go's Regexp.Expand: `spans[i]` is group i's (start, end) in `line`, (-1, -1) if it did not take part."""
    out = bytearray()
    pos = 0
    while True:
        dollar = template.find(b"$", pos)
        if dollar < 0:
            break
        out += template[pos:dollar]
        pos = dollar + 1
        if template[pos:pos + 1] == b"$":
            out += b"$"
            pos += 1
            continue
        ref = _extract(template, pos)
        if ref is None:
            out += b"$"  # malformed: the `$` stays literal text
            continue
        name, pos = ref
        number = _group_number(name)
        if number < 0:
            number = names.get(name, -1)
        if 0 <= number < len(spans) and spans[number][0] >= 0:
            start, end = spans[number]
            out += line[start:end]
    out += template[pos:]
    return bytes(out)


class LineScanner:
    """Go bufio.Scanner with ScanLines over an asyncio StreamReader (limit must be MAX_LINE - 1)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.done = False
        self.text = b""
        self.lines = 0
        self.consumed = 0  # bytes, newlines included

    async def scan(self) -> bool:
        """Read the next line into .text; False at end of stream. Raises LineTooLong, DialogueTooLong or OSError."""
        if self.done:
            return False
        if self.consumed > MAX_DIALOGUE_BYTES:
            self.done = True
            raise DialogueTooLong(f"the peer sent more than {MAX_DIALOGUE_BYTES} bytes of lines (the dialogue's limit)")
        try:
            line = await self.reader.readuntil(b"\n")
            self.consumed += len(line)
            line = line[:-1]
        except asyncio.IncompleteReadError as err:
            self.done = True
            if not err.partial:
                self.text = b""
                return False
            line = err.partial  # a final line without a newline still counts
            self.consumed += len(line)
        except asyncio.LimitOverrunError:
            self.done = True
            raise LineTooLong("bufio.Scanner: token too long") from None
        if line.endswith(b"\r"):
            line = line[:-1]
        self.text = line
        self.lines += 1
        return True


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _expect_info(metrics: ProbeMetrics, step: QueryResponse, values: list[str], log: ProbeLog) -> None:
    names = [label.name for label in step.labels]
    invalid = [name for name in names if not _LABEL_NAME.match(name) or name.startswith("__")]
    if invalid or len(set(names)) != len(names):
        # Upstream panics registering such a metric; we skip it and say why.
        log.warn("probe_expect_info not exported: invalid or repeated label names", labels=",".join(names))
        return
    vec = metrics.gauge_vec("probe_expect_info", "Explicit content matched", names)
    if vec.labelnames != tuple(names):
        # Upstream panics on a second labelled step; we keep the first set and say why.
        log.warn("probe_expect_info already registered with other label names; labels of this step dropped",
                 labels=",".join(names))
        return
    vec.labels(*values).set(1)


StartTLS = Callable[[], Awaitable[None]]


async def run_query_response(steps: list[QueryResponse], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             metrics: ProbeMetrics, log: ProbeLog, starttls: StartTLS) -> bool:
    """Run the steps over an open connection. `starttls` upgrades `writer` in place (and registers
    the TLS metrics). Registers probe_failed_due_to_regex and probe_failed_due_to_bytes."""
    regex_gauge = metrics.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex")
    bytes_gauge = metrics.gauge("probe_failed_due_to_bytes", "Indicates if probe failed due to bytes")
    scanner = LineScanner(reader)
    waiting_for = "the connection"
    try:
        for index, step in enumerate(steps):
            log.debug("Processing query response entry", entry_number=index)
            send = step.send or b""
            if step.expect is not None:
                waiting_for = f"a line matching {step.expect.pattern!r}"
                match: Any = None
                try:
                    while await scanner.scan():
                        if scanner.lines <= MAX_LOGGED_LINES:
                            log.debug("Read line", line=_text(scanner.text))
                        elif scanner.lines == MAX_LOGGED_LINES + 1:
                            log.debug("Further lines read but not logged", logged=MAX_LOGGED_LINES)
                        match = step.expect.compiled.search(scanner.text)
                        if match is not None:
                            log.debug("Regexp matched", regexp=step.expect.pattern, line=_text(scanner.text))
                            break
                except (LineTooLong, DialogueTooLong, OSError) as err:
                    log.error("Error reading from connection", err=describe_os_error(err))
                    return False
                if match is None:
                    regex_gauge.set(1)
                    log.error("Regexp did not match", regexp=step.expect.pattern, line=_text(scanner.text))
                    return False
                regex_gauge.set(0)
                spans = [match.span(group) for group in range(step.expect.compiled.groups + 1)]
                names = dict(step.expect.compiled.groupindex)
                send = go_expand(send, scanner.text, spans, names)
                if step.labels:
                    _expect_info(metrics, step, [_text(go_expand(label.value.encode(), scanner.text, spans, names))
                                                 for label in step.labels], log)
            if step.expect_bytes:
                expected = step.expect_bytes
                waiting_for = f"{len(expected)} bytes"
                try:
                    data = await reader.read(len(expected))
                except OSError as err:
                    log.error("Error reading from connection", err=describe_os_error(err))
                    return False
                if not data:
                    log.error("Error reading from connection", err="EOF")
                    return False
                log.debug("Read bytes", bytes=data.hex())
                if len(data) < len(expected):
                    log.error("Read less data than expected", expected=expected.hex(), bytes=data.hex())
                    return False
                if data != expected:
                    bytes_gauge.set(1)
                    log.error("Bytes did not match", expected=expected.hex(), bytes=data.hex())
                    return False
                log.debug("Bytes matched", expected=expected.hex(), bytes=data.hex())
                bytes_gauge.set(0)
            if send:
                waiting_for = "the send to complete"
                log.debug("Sending line", line=_text(send))
                try:
                    writer.write(send + b"\n")
                    await writer.drain()
                except OSError as err:
                    log.error("Failed to send", err=describe_os_error(err))
                    return False
            if step.starttls:
                waiting_for = "the STARTTLS handshake"
                try:
                    await starttls()
                except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
                    log.error("TLS Handshake (client) failed", err=describe_os_error(err))
                    return False
                log.debug("TLS Handshake (client) succeeded.")
    except asyncio.CancelledError:
        # The probe deadline (Go's conn deadline): say what we were waiting for.
        log.error("Deadline reached during query_response", waiting_for=waiting_for)
        raise
    return True
