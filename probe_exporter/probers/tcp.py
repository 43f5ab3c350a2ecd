"""The TCP prober: blackbox_exporter's prober/tcp.go semantics on asyncio streams.

Dial the one address chooseProtocol picked (optionally from source_ip_address, optionally TLS
from the first byte), then run the query_response dialogue. On a dial failure only the
address-selection metrics exist, as upstream (master); the regex/bytes gauges come after the dial.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from probe_exporter.config.blackbox import TCPProbe, UnixProbe
from probe_exporter.config.tls import TLSConfig
from probe_exporter.logs import ProbeLog
from probe_exporter.modulecache import CacheKey
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.net.addr import resolve_host
from probe_exporter.probers.net.hostport import (
    HostPortError,
    join_host_port,
    port_number,
    split_host_port,
)
from probe_exporter.probers.net.tls_info import register_tls_metrics
from probe_exporter.probers.neterrors import describe_os_error
from probe_exporter.probers.query_response import MAX_LINE, run_query_response


def module_ssl_context(ctx: ProbeContext, key: str, tls_config: TLSConfig) -> ssl.SSLContext:
    """The module's client SSL context (`key` names the prober's block), built once (reading CA/cert
    files) and reused by every probe."""
    return ctx.module.cached(CacheKey[ssl.SSLContext](key), tls_config.ssl_context)


def dialogue_ssl_context(ctx: ProbeContext, key: str, cfg: TCPProbe | UnixProbe) -> ssl.SSLContext | None:
    """The context a tcp/unix dialogue needs (`tls`, or a `starttls` step); raises OSError/ValueError."""
    if cfg.tls or any(step.starttls for step in cfg.query_response):
        return module_ssl_context(ctx, key, cfg.tls_config)
    return None


def register_connection_tls(metrics: ProbeMetrics, writer: asyncio.StreamWriter, tls_config: TLSConfig) -> None:
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is not None:
        register_tls_metrics(metrics, ssl_object, verified=not tls_config.insecure_skip_verify, last_chain=True,
                             cipher=False)


async def converse(ctx: ProbeContext, cfg: TCPProbe | UnixProbe, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, context: ssl.SSLContext | None, server_name: str,
                   metrics: ProbeMetrics, log: ProbeLog, starttls_refusal: str = "") -> bool:
    """The query_response dialogue over a freshly dialled connection, which it closes afterwards.
    A non-empty `starttls_refusal` fails a `starttls` step with that reason instead of upgrading."""
    log.debug("Successfully dialed")
    try:
        if cfg.tls:
            register_connection_tls(metrics, writer, cfg.tls_config)

        async def starttls() -> None:
            assert context is not None
            if starttls_refusal:
                raise ValueError(starttls_refusal)
            await writer.start_tls(context, server_hostname=server_name,
                                   ssl_handshake_timeout=max(ctx.timeout, 0.001))
            register_connection_tls(metrics, writer, cfg.tls_config)

        return await run_query_response(cfg.query_response, reader, writer, metrics, log, starttls)
    finally:
        writer.close()


async def probe_tcp(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    cfg: TCPProbe = ctx.module.tcp
    try:
        host, port_text = split_host_port(ctx.target)
        port = port_number(port_text)
    except HostPortError as err:
        log.error("Error splitting target address and port", err=str(err))
        return False
    ip = await resolve_host(host, cfg, metrics, log)
    if ip is None:
        return False

    # SNI and the verified name: tls_config.server_name, else ?hostname=, else the target host.
    server_name = cfg.tls_config.server_name or ctx.params.get("hostname") or host
    try:
        context = dialogue_ssl_context(ctx, "tcp.ssl", cfg)
    except (OSError, ValueError) as err:
        log.error("Error creating TLS configuration", err=describe_os_error(err))
        return False

    local_addr = (cfg.source_ip_address, 0) if cfg.source_ip_address else None
    if local_addr:
        log.debug("Using local address", srcIP=cfg.source_ip_address)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    dial_target = join_host_port(ip, port)
    log.debug("Dialing TCP with TLS" if cfg.tls else "Dialing TCP without TLS", address=dial_target)
    try:
        reader, writer = await asyncio.open_connection(
            ip, port, family=family, local_addr=local_addr, limit=MAX_LINE - 1,
            ssl=context if cfg.tls else None, server_hostname=server_name if cfg.tls else None,
            ssl_handshake_timeout=max(ctx.timeout, 0.001) if cfg.tls else None)
    except (OSError, ValueError) as err:
        log.error("Error dialing TCP", err=f"dial tcp{6 if family == socket.AF_INET6 else 4} {dial_target}: "
                                          f"{describe_os_error(err)}")
        return False
    except asyncio.CancelledError:
        log.error("Error dialing TCP", err=f"dial tcp {dial_target}: i/o timeout (probe deadline)")
        raise
    return await converse(ctx, cfg, reader, writer, context, server_name, metrics, log)


PROBER = Prober(name="tcp", probe=probe_tcp, config_model=TCPProbe)
