"""The unix prober (blackbox 0.28+): the tcp prober's dialogue over a unix socket path."""

from __future__ import annotations

import asyncio
import errno

from probe_exporter.config.blackbox import UnixProbe
from probe_exporter.probers.base import ProbeContext, Prober
from probe_exporter.probers.neterrors import describe_os_error
from probe_exporter.probers.query_response import MAX_LINE
from probe_exporter.probers.tcp import converse, dialogue_ssl_context

_NO_NAME = "tls: either ServerName or InsecureSkipVerify must be specified in the tls.Config"


async def probe_unix(ctx: ProbeContext) -> bool:
    metrics, log = ctx.metrics, ctx.log
    cfg: UnixProbe = ctx.module.unix
    path = ctx.target
    # No host to default to: TLS verification needs tls_config.server_name (or insecure_skip_verify).
    server_name = cfg.tls_config.server_name or ""
    try:
        context = dialogue_ssl_context(ctx, "unix.ssl", cfg)
    except (OSError, ValueError) as err:
        log.error("Error creating TLS configuration", err=describe_os_error(err))
        return False
    # Python would verify the chain but no name; Go refuses such a handshake, and so do we.
    nameless = context is not None and not server_name and not cfg.tls_config.insecure_skip_verify
    if cfg.tls and nameless:
        log.error("Error dialing unix", err=_NO_NAME)
        return False
    log.debug("Dialing unix with TLS" if cfg.tls else "Dialing unix without TLS", path=path)
    try:
        reader, writer = await asyncio.open_unix_connection(
            path, limit=MAX_LINE - 1, ssl=context if cfg.tls else None,
            server_hostname=server_name if cfg.tls else None,
            ssl_handshake_timeout=max(ctx.timeout, 0.001) if cfg.tls else None)
    except (OSError, ValueError) as err:
        reason = describe_os_error(err)
        if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM):
            reason = f"permission denied connecting to unix socket {path}: {reason}"
        log.error("Error dialing unix", err=f"dial unix {path}: {reason}")
        return False
    except asyncio.CancelledError:
        log.error("Error dialing unix", err=f"dial unix {path}: i/o timeout (probe deadline)")
        raise
    return await converse(ctx, cfg, reader, writer, context, server_name, metrics, log,
                          starttls_refusal=_NO_NAME if nameless else "")


PROBER = Prober(name="unix", probe=probe_unix, config_model=UnixProbe)
