"""Limits on what /probe may do: how many probes run at once, and which targets a module may probe.

Concurrency: a global limit (`--probes.max-concurrency`) and a per-module `max_concurrency`. A probe
waits for a module slot first, then a global one, so a saturated module queues without holding global
slots that other modules could use. The wait happens inside the probe's deadline (the runner's
asyncio.timeout), so a probe that cannot start in time fails with probe_success 0 and says why.

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from probe_exporter.gotext import go_quote

if TYPE_CHECKING:
    from probe_exporter.selfmetrics import SelfMetrics
    from probe_exporter.workers.slots import Acquirable, SharedSlots

# --- concurrency -------------------------------------------------------------------------------------


class ProbeLimiter:
    """Concurrency slots: one global semaphore and one per module (created on first use)."""

    def __init__(self, max_concurrent: int = 0, metrics: SelfMetrics | None = None) -> None:
        self.max_concurrent = max_concurrent
        self._global = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
        # module name -> (limit, semaphore); a reload that changes the limit gets a fresh semaphore,
        # and probes holding the old one release it as they finish.
        self._modules: dict[str, tuple[int, asyncio.Semaphore]] = {}
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

    def queue_length(self, module_name: str | None = None) -> int:
        if module_name is None:
            return sum(self.queued.values())
        return self.queued.get(module_name, 0)

    @contextlib.asynccontextmanager
    async def slot(self, module_name: str, module_limit: int = 0) -> AsyncIterator[float]:
        """Hold a slot for one probe; yields the seconds spent waiting for it.

        Cancellation (the deadline) while waiting releases whatever was already acquired.
        """
        semaphores: list[Acquirable] = [
            s for s in (self._module_semaphore(module_name, module_limit), self._global) if s is not None]
        if self.shared is not None:
            semaphores = self.shared.across_workers(semaphores, module_name, module_limit, self.max_concurrent)
        if not semaphores:
            yield 0.0
            return
        start = time.monotonic()
        acquired: list[Acquirable] = []
        self._queue_change(module_name, +1)
        try:
            for semaphore in semaphores:
                await semaphore.acquire()
                acquired.append(semaphore)
        except BaseException:
            for semaphore in acquired:
                semaphore.release()
            if self._metrics is not None:
                self._metrics.probes_not_started.labels(module_name).inc()
            raise
        finally:
            self._queue_change(module_name, -1)
        waited = time.monotonic() - start
        if self._metrics is not None:
            self._metrics.queue_wait.labels(module_name).observe(waited)
        try:
            yield waited
        finally:
            for semaphore in acquired:
                semaphore.release()

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
_URL_PROBERS = ("http",)


@dataclass(frozen=True)
class _TargetParts:
    host: str | None = None           # a host name (lower case, no trailing dot) or an IP literal
    port: int | None = None
    url: SplitResult | None = None    # set when the target has a scheme
    path: str | None = None           # a filesystem path (unix sockets, SQLite files)


def _split_target(target: str, prober: str) -> _TargetParts:
    if prober in _URL_PROBERS and "://" not in target:
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
        return not prefix or url.path == prefix or url.path.startswith(prefix + "/")


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
        return _URLPrefixRule(scheme, _clean_host(url.hostname), port or _DEFAULT_PORTS.get(scheme), url.path)
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
        parts = _split_target(target, prober)
        return any(rule.matches(parts) for rule in self._rules)

    def check(self, target: str, module_name: str, prober: str) -> None:
        if not self.allows(target, prober):
            raise TargetNotAllowed(f"Target {go_quote(target)} is not allowed for module {go_quote(module_name)} "
                                   "(not in its allowed_targets)")


def check_target(module_name: str, module: object, target: str) -> None:
    """Raise TargetNotAllowed unless the module's allowed_targets cover `target`."""
    entries: list[str] = getattr(module, "allowed_targets", [])
    if not entries:
        return
    prober: str = getattr(module, "prober", "")
    policy: TargetPolicy = module.cached("allowed_targets", lambda: TargetPolicy(entries))  # type: ignore[attr-defined]
    policy.check(target, module_name, prober)
