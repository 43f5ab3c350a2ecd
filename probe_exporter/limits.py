"""Limits on what a probe may do: how many probes run at once, and which targets a module may probe.

Concurrency: a global limit (`--probes.max-concurrency`, by default derived from the open-files
limit) and a per-module `max_concurrency`. A probe waits for a module slot first, then a global one,
so a saturated module queues without holding global slots that other modules could use. Global slots
are handed out per module: when one frees up, it goes to the waiting module with the fewest probes
running, so a slow module's queue never holds a fast module's probes behind it. The wait happens
inside the probe's deadline (the pipeline's asyncio.timeout); a probe that cannot start in time is
the exporter's failure, not the target's (HTTP 503, see probe_exporter.pipeline).

Targets: a module's opt-in `allowed_targets` list, checked before anything touches the target. The
guard against using the exporter as an open proxy (blackbox_exporter refuses per-target overrides for
the same reason, but any target is still allowed there).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import ipaddress
import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from probe_exporter.gotext import go_quote
from probe_exporter.modulecache import CacheKey

if TYPE_CHECKING:
    from probe_exporter.selfmetrics import SelfMetrics
    from probe_exporter.workers.slots import SharedSlots

# --- concurrency -------------------------------------------------------------------------------------

# File descriptors kept out of the derived global limit: the listeners, logs, config files, the
# resolver's sockets and the SNMP engine.
RESERVED_FILE_DESCRIPTORS = 64
# Every probe holds at least two descriptors: the scrape's connection and its own to the target.
FILE_DESCRIPTORS_PER_PROBE = 2

MODULE_LIMIT = "module_limit"
GLOBAL_LIMIT = "global_limit"
TARGET_LIMIT = "target_limit"
# Per-target semaphores kept at most (targets come from URLs): only idle ones are dropped.
MAX_TARGET_KEYS = 4096


def default_max_concurrency(open_files_limit: int) -> int:
    """The global limit when no flag sets one: as many probes as the open-files limit can hold. A
    probe past it would fail for lack of a descriptor in blackbox_exporter too, so this never refuses
    or queues a probe that blackbox_exporter would run."""
    return max((open_files_limit - RESERVED_FILE_DESCRIPTORS) // FILE_DESCRIPTORS_PER_PROBE, 1)


@dataclass
class SlotWait:
    """Where a probe waits for its slot; read by the pipeline when the deadline ends the wait."""

    stage: str = ""            # TARGET_, MODULE_ or GLOBAL_LIMIT while waiting, "" once it holds its slot
    waited: float = 0.0


class _FairSlots:
    """A semaphore with one queue per module: a freed slot goes to the module with the fewest probes
    running (oldest waiter first within a module), so no module's backlog delays another module."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.running: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    async def acquire(self, module_name: str) -> None:
        if self.total < self.limit and not self._waiting:
            self._take(module_name)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(module_name, deque()).append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(module_name)  # granted just as the deadline hit: pass it on
            else:
                queue = self._waiting.get(module_name)
                if queue is not None:
                    with contextlib.suppress(ValueError):
                        queue.remove(waiter)
                    if not queue:
                        del self._waiting[module_name]
            raise

    def release(self, module_name: str) -> None:
        self.total -= 1
        count = self.running[module_name] - 1
        if count:
            self.running[module_name] = count
        else:
            del self.running[module_name]
        self._grant()

    def _take(self, module_name: str) -> None:
        self.total += 1
        self.running[module_name] = self.running.get(module_name, 0) + 1

    def _grant(self) -> None:
        while self.total < self.limit and self._waiting:
            module_name = min(self._waiting, key=lambda name: self.running.get(name, 0))
            queue = self._waiting[module_name]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[module_name]
            if not waiter.done():
                self._take(module_name)
                waiter.set_result(None)


class ProbeLimiter:
    """Concurrency slots: global ones shared fairly between modules, one semaphore per module and,
    where a module sets max_concurrency_per_target, one per (module, target); created on first use."""

    def __init__(self, max_concurrent: int = 0, metrics: SelfMetrics | None = None) -> None:
        self.max_concurrent = max_concurrent
        self._global = _FairSlots(max_concurrent) if max_concurrent > 0 else None
        # module name -> (limit, semaphore); a reload that changes the limit gets a fresh semaphore,
        # and probes holding the old one release it as they finish.
        self._modules: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._targets: OrderedDict[tuple[str, str], tuple[int, asyncio.Semaphore]] = OrderedDict()
        self._metrics = metrics
        self.queued: dict[str, int] = {}
        # --web.workers: slots counted over every worker (set by workers/cluster.py); None in one process.
        self.shared: SharedSlots | None = None

    def _module_semaphore(self, module_name: str, limit: int) -> asyncio.Semaphore | None:
        if limit <= 0:
            self._modules.pop(module_name, None)
            return None
        current = self._modules.get(module_name)
        if current is None or current[0] != limit:
            current = self._modules[module_name] = (limit, asyncio.Semaphore(limit))
        return current[1]

    def _target_semaphore(self, module_name: str, target: str, limit: int) -> asyncio.Semaphore | None:
        if limit <= 0:
            return None
        key = (module_name, target)
        current = self._targets.get(key)
        if current is None or current[0] != limit:
            current = self._targets[key] = (limit, asyncio.Semaphore(limit))
            self._drop_idle_targets()
        self._targets.move_to_end(key)
        return current[1]

    def _drop_idle_targets(self) -> None:
        while len(self._targets) > MAX_TARGET_KEYS:
            for key, (limit, semaphore) in self._targets.items():
                if semaphore._value == limit:  # nobody holds or waits for it
                    del self._targets[key]
                    break
            else:
                return

    def target_keys(self) -> int:
        return len(self._targets)

    def queue_length(self, module_name: str | None = None) -> int:
        if module_name is None:
            return sum(self.queued.values())
        return self.queued.get(module_name, 0)

    @contextlib.asynccontextmanager
    async def slot(self, module_name: str, module_limit: int = 0, wait: SlotWait | None = None,
                   target: str = "", target_limit: int = 0) -> AsyncIterator[float]:
        """Hold a slot for one probe; yields the seconds spent waiting for it. `wait` tells, if the
        deadline cancels the wait, which limit the probe was waiting for. Narrowest first: a probe
        queued behind its own target or module holds no wider slot meanwhile.

        Cancellation (the deadline) while waiting releases whatever was already acquired.
        """
        wait = wait if wait is not None else SlotWait()
        target_semaphore = self._target_semaphore(module_name, target, target_limit)
        module_semaphore = self._module_semaphore(module_name, module_limit)
        if target_semaphore is None and module_semaphore is None and self._global is None:
            yield 0.0
            return
        start = time.monotonic()
        held_target = held_module = held_global = False
        shared_held: list[str] = []  # --web.workers: slots counted over every worker (workers/slots.py)

        def release_all() -> None:
            """Whatever was taken, in reverse order: on cancellation while waiting, or after the probe."""
            self._release_shared(shared_held)
            if held_global and self._global is not None:
                self._global.release(module_name)
            if held_module and module_semaphore is not None:
                module_semaphore.release()
            if held_target and target_semaphore is not None:
                target_semaphore.release()
        self._queue_change(module_name, +1)
        try:
            if target_semaphore is not None:
                wait.stage = TARGET_LIMIT
                await target_semaphore.acquire()
                held_target = True
            if module_semaphore is not None:
                wait.stage = MODULE_LIMIT
                await module_semaphore.acquire()
                held_module = True
                if self.shared is not None:
                    await self.shared.acquire(module_name, module_limit)
                    shared_held.append(module_name)
            if self._global is not None:
                wait.stage = GLOBAL_LIMIT
                await self._global.acquire(module_name)
                held_global = True
                if self.shared is not None:
                    await self.shared.acquire(self.shared.GLOBAL, self.max_concurrent)
                    shared_held.append(self.shared.GLOBAL)
            wait.stage = ""
        except BaseException:
            release_all()
            raise
        finally:
            self._queue_change(module_name, -1)
            wait.waited = time.monotonic() - start
        if self._metrics is not None:
            self._metrics.queue_wait.labels(module_name).observe(wait.waited)
        try:
            yield wait.waited
        finally:
            release_all()

    def _release_shared(self, names: list[str]) -> None:
        if self.shared is not None:
            for name in names:
                self.shared.release(name)

    def _queue_change(self, module_name: str, delta: int) -> None:
        count = self.queued.get(module_name, 0) + delta
        if count:
            self.queued[module_name] = count
        else:
            self.queued.pop(module_name, None)
        if self._metrics is not None:
            self._metrics.probes_queued.labels(module_name).inc(delta)


# --- allowed targets ---------------------------------------------------------------------------------


class TargetNotAllowed(Exception):
    """The module's allowed_targets do not cover the target: HTTP 403 with this one-line reason."""


_HOST_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")
_GLOB_WITH_PORT = re.compile(r"^([^:/\[\]]+):(\d+|\*)$")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "grpc": 80, "grpcs": 443}
# Probers whose targets blackbox_exporter reads as URLs with `http://` assumed when no scheme is given.
_URL_TARGET_KINDS = ("http",)


@dataclass(frozen=True)
class _TargetParts:
    host: str | None = None           # a host name (lower case, no trailing dot) or an IP literal
    port: int | None = None
    url: SplitResult | None = None    # set when the target has a scheme
    path: str | None = None           # a filesystem path (unix sockets, SQLite files)


def _split_target(target: str, prober: str) -> _TargetParts:
    if prober in _URL_TARGET_KINDS and "://" not in target:
        target = "http://" + target
    if "://" in target:
        try:
            url = urlsplit(target)
            port = url.port
        except ValueError:
            return _TargetParts()
        if url.scheme == "unix":
            return _TargetParts(path=url.path, url=url)
        return _TargetParts(host=_clean_host(url.hostname or ""), port=port or _DEFAULT_PORTS.get(url.scheme),
                            url=url)
    if target.startswith("/"):
        return _TargetParts(path=target)
    host, port_text = target, ""
    if target.startswith("["):
        inside, _, rest = target[1:].partition("]")
        host, port_text = inside, rest.removeprefix(":")
    elif target.count(":") == 1:
        host, _, port_text = target.partition(":")
    port = int(port_text) if port_text.isdigit() else None
    return _TargetParts(host=_clean_host(host), port=port)


def _clean_host(host: str) -> str:
    return host.lower().removesuffix(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def control_character(target: str) -> str | None:
    """The first C0 control character or DEL in a target, None when there is none. Such a target is
    refused with a 400: URL parsers drop tabs and newlines silently, socket APIs stop at a NUL, so what
    was checked would not be what gets probed."""
    match = _CONTROL_CHARACTERS.search(target)
    return match.group() if match else None


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: `/a/b/../c/./d` is `/a/c/d`; a `..` never climbs above the root."""
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    return result if not path.startswith("/") or result.startswith("/") else "/" + result


def matched_path(url: SplitResult) -> str:
    """The path a URL prefix is compared with: decoded as Go's url.Parse does (the second decoding,
    after the query string's), then its dot segments removed, so `%2e%2e` and `..` cannot climb out."""
    return remove_dot_segments(unquote(url.path))


class _Rule:
    def matches(self, parts: _TargetParts) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class _NetworkRule(_Rule):
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def matches(self, parts: _TargetParts) -> bool:
        # Only IP literals: a name would be resolved again by the prober, possibly to another address.
        address = _ip(parts.host) if parts.host else None
        return address is not None and address.version == self.network.version and address in self.network


@dataclass(frozen=True)
class _HostRule(_Rule):
    pattern: str
    port: str | None

    def matches(self, parts: _TargetParts) -> bool:
        host = parts.host
        if not host or not (_HOST_CHARS.match(host) or _ip(host) is not None):
            return False
        if self.port is not None and self.port != "*" and str(parts.port) != self.port:
            return False
        return fnmatch.fnmatchcase(host, self.pattern)


@dataclass(frozen=True)
class _URLPrefixRule(_Rule):
    scheme: str
    host: str
    port: int | None
    path: str

    def matches(self, parts: _TargetParts) -> bool:
        url = parts.url
        if url is None or url.scheme.lower() != self.scheme or parts.host != self.host or parts.port != self.port:
            return False
        if url.username is not None or url.password is not None:
            return False
        prefix = self.path.rstrip("/")
        path = matched_path(url)
        return not prefix or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class _PathRule(_Rule):
    pattern: str

    def matches(self, parts: _TargetParts) -> bool:
        if parts.path is None:
            return False
        return fnmatch.fnmatchcase(os.path.normpath(parts.path), self.pattern)


def _rule(entry: str) -> _Rule:
    text = entry.strip()
    if not text:
        raise ValueError("empty entry in allowed_targets")
    if "://" in text:
        try:
            url = urlsplit(text)
            port = url.port
        except ValueError as err:
            raise ValueError(f"invalid URL prefix {entry!r} in allowed_targets: {err}") from None
        if not url.hostname:
            raise ValueError(f"URL prefix {entry!r} in allowed_targets has no host")
        scheme = url.scheme.lower()
        return _URLPrefixRule(scheme, _clean_host(url.hostname), port or _DEFAULT_PORTS.get(scheme), matched_path(url))
    if text.startswith("/"):
        return _PathRule(os.path.normpath(text))
    try:
        return _NetworkRule(ipaddress.ip_network(text, strict=False))
    except ValueError:
        if "/" in text and not any(c in text for c in "*?["):
            raise ValueError(f"invalid CIDR {entry!r} in allowed_targets") from None
    match = _GLOB_WITH_PORT.match(text)
    host, port_pattern = (match.group(1), match.group(2)) if match else (text, None)
    if not re.fullmatch(r"[A-Za-z0-9_.*?\[\]!-]+", host):
        raise ValueError(f"invalid host pattern {entry!r} in allowed_targets")
    return _HostRule(_clean_host(host), port_pattern)


class TargetPolicy:
    """A module's allowed_targets, compiled. Empty means every target is allowed."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = list(entries)
        self._rules = [_rule(entry) for entry in entries]

    def allows(self, target: str, prober: str) -> bool:
        if not self._rules:
            return True
        if control_character(target) is not None:
            return False
        parts = _split_target(target, prober)
        return any(rule.matches(parts) for rule in self._rules)

    def allows_host(self, host: str, port: int | None = None) -> bool:
        """An already split host (a name or an IP literal, an IPv6 zone ignored) and port: for
        probers that parse targets their own way (SQL's target_allow)."""
        parts = _TargetParts(host=_clean_host(host.partition("%")[0] if ":" in host else host), port=port)
        return any(rule.matches(parts) for rule in self._rules)

    @property
    def has_networks(self) -> bool:
        return any(isinstance(rule, _NetworkRule) for rule in self._rules)

    def allows_address(self, address: str) -> bool:
        """An IP address (of a resolved name) inside one of the CIDRs or addresses."""
        parts = _TargetParts(host=_clean_host(address.partition("%")[0]))
        return any(isinstance(rule, _NetworkRule) and rule.matches(parts) for rule in self._rules)

    def check(self, target: str, module_name: str, prober: str) -> None:
        if not self.allows(target, prober):
            raise TargetNotAllowed(f"Target {go_quote(target)} is not allowed for module {go_quote(module_name)} "
                                   "(not in its allowed_targets)")


ALLOWED_TARGETS = CacheKey["TargetPolicy"]("allowed_targets")


def target_policy(module: object) -> TargetPolicy | None:
    """The module's compiled allowed_targets, or None when it has none (every target allowed). Probers
    that go on to other targets by themselves (HTTP redirects) check each one against it."""
    entries: list[str] = getattr(module, "allowed_targets", [])
    if not entries:
        return None
    return module.cached(ALLOWED_TARGETS, lambda: TargetPolicy(entries))  # type: ignore[attr-defined,no-any-return]


def check_target(module_name: str, module: object, target: str) -> None:
    """Raise TargetNotAllowed unless the module's allowed_targets cover `target`."""
    policy = target_policy(module)
    if policy is not None:
        policy.check(target, module_name, getattr(module, "prober", ""))
