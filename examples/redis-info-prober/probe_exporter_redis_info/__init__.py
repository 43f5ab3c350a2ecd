"""`prober: redis_info`: connects to a Redis server, authenticates if configured, sends INFO and
exposes chosen numeric fields as gauges. An example of a probe_exporter plugin prober."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Literal

from pydantic import Field

from probe_exporter.config.types import Secret, StrictModel
from probe_exporter.probers.base import BadRequest, ProbeContext, Prober

DEFAULT_PORT = 6379
# INFO fields exposed when the module names none: what a dashboard of one Redis shows first.
DEFAULT_FIELDS = ["uptime_in_seconds", "connected_clients", "blocked_clients", "used_memory",
                  "keyspace_hits", "keyspace_misses", "connected_slaves"]
MAX_REPLY_BYTES = 1 << 20  # INFO is a few KiB; a larger reply is not a Redis server


class RedisInfoConfig(StrictModel):
    """The module's `redis_info:` block."""

    username: str = ""
    password: Secret | None = None
    fields: list[str] = Field(default_factory=lambda: list(DEFAULT_FIELDS))
    # Fail the probe unless the server has this replication role.
    expect_role: Literal["master", "slave"] | None = None


def _split_target(target: str) -> tuple[str, int]:
    host, colon, port = target.rpartition(":")
    if not colon:
        host, port = target, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"target {target!r} is not host:port")
    return host, int(port)


def _command(*words: str) -> bytes:
    """A command in RESP, Redis' wire format: an array of bulk strings."""
    encoded = [word.encode() for word in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One reply: a simple string, an error (raised as ValueError) or a bulk string."""
    line = (await reader.readuntil(b"\r\n"))[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise ValueError(rest.decode(errors="replace"))
    if kind == b"$" and rest.isdigit() and int(rest) <= MAX_REPLY_BYTES:
        return (await reader.readexactly(int(rest) + 2))[:-2]
    raise ValueError(f"unexpected reply {line[:40]!r}")


def _parse_info(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and not key.startswith("#"):
            fields[key] = value
    return fields


async def probe_redis_info(ctx: ProbeContext) -> bool:
    cfg = ctx.module.prober_config()
    assert isinstance(cfg, RedisInfoConfig)
    host, port = _split_target(ctx.target)
    durations = ctx.metrics.gauge_vec("probe_redis_duration_seconds", "Duration of the probe by phase", ["phase"])
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as err:
        ctx.log.error("Error dialing Redis", err=str(err))
        return False
    durations.labels("connect").set(time.monotonic() - start)
    try:
        start = time.monotonic()
        if cfg.password is not None:
            words = [cfg.username] if cfg.username else []
            writer.write(_command("AUTH", *words, cfg.password.reveal()))
            await _reply(reader)
        writer.write(_command("INFO"))
        info = _parse_info((await _reply(reader)).decode(errors="replace"))
        durations.labels("info").set(time.monotonic() - start)
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
        ctx.log.error("Redis did not answer INFO", err=str(err))
        return False
    finally:
        writer.close()
    for field in cfg.fields:
        value = info.get(field)
        try:
            number = float(value) if value is not None else None
        except ValueError:
            number = None
        if number is None:
            ctx.log.debug("INFO field missing or not a number", field=field)
            continue
        name = "probe_redis_" + re.sub(r"[^a-zA-Z0-9_]", "_", field)
        ctx.metrics.set(name, f"Redis INFO field {field}", number)
    role = info.get("role", "")
    ctx.metrics.gauge_vec("probe_redis_role", "The server's replication role", ["role"]).labels(role).set(1)
    if cfg.expect_role is not None and role != cfg.expect_role:
        ctx.log.error("Role does not match", role=role, expected=cfg.expect_role)
        return False
    return True


PROBER = Prober(name="redis_info", probe=probe_redis_info, config_model=RedisInfoConfig)
