"""Running one probe: deadline, prober call, probe_success and probe_duration_seconds.

Shared by /probe, the `probe` CLI command and (later) the web page, so they all behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from probe_exporter import logs, registry
from probe_exporter.config import Config, Module
from probe_exporter.config.secrets import secret_values
from probe_exporter.limits import ProbeLimiter
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers import resolver
from probe_exporter.probers.base import BadRequest, ProbeContext
from probe_exporter.settings import Settings

DEFAULT_SCRAPE_TIMEOUT = 120.0

_probe_ids = itertools.count()


def compute_timeout(scrape_timeout_header: str | None, offset: float, module_timeout: float) -> float:
    """blackbox_exporter's getTimeout, quirks included. Raises ValueError on a bad header."""
    scrape_timeout = DEFAULT_SCRAPE_TIMEOUT
    if scrape_timeout_header:
        try:
            scrape_timeout = float(scrape_timeout_header)
        except ValueError:
            raise ValueError(f'strconv.ParseFloat: parsing "{scrape_timeout_header}": invalid syntax') from None
        if scrape_timeout != scrape_timeout or scrape_timeout == 0:  # NaN or 0 mean "not set"
            scrape_timeout = DEFAULT_SCRAPE_TIMEOUT
    max_timeout = scrape_timeout - offset
    if 0 < module_timeout < max_timeout or max_timeout < 0:
        return module_timeout
    return max_timeout


@dataclass
class ProbeOutcome:
    probe_id: int
    module_name: str
    target: str
    success: bool
    duration: float
    metrics: ProbeMetrics
    log: logs.ProbeLog
    reason: str = ""


async def run_probe(module_name: str, module: Module, target: str, timeout: float,
                    params: Mapping[str, str] | None = None, config: Config | None = None,
                    limiter: ProbeLimiter | None = None, settings: Settings | None = None) -> ProbeOutcome:
    """Run the module against the target within `timeout` seconds. Raises BadRequest for a 400.

    With a limiter, the probe first waits for a concurrency slot; the wait counts against `timeout`,
    and the prober gets what is left of it.
    """
    try:
        prober = registry.get(module.prober)
    except registry.UnknownProber:
        raise BadRequest(f'Unknown prober "{module.prober}"') from None
    probe_id = next(_probe_ids)
    secrets = module.cached("secret_values", lambda: secret_values(
        module, *(config.snmp_auths.values() if config is not None and module.prober == "snmp" else ())))
    shown_target = logs.mask_target(target)
    log = logs.ProbeLog(secrets, module=module_name, target=shown_target)
    log.forward_context["probe_id"] = probe_id
    metrics = ProbeMetrics()
    success_gauge = metrics.gauge("probe_success", "Displays whether or not the probe was a success")
    duration_gauge = metrics.gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds")
    log.info("Beginning probe", probe=module.prober, timeout_seconds=timeout)
    arrived = start = time.monotonic()
    started = False
    success = False
    timed_out = ""
    try:
        if timeout <= 0:
            started = True  # nothing to wait for: the deadline has passed already
            raise TimeoutError
        async with asyncio.timeout(timeout):
            slot = limiter.slot(module_name, module.max_concurrency) if limiter else contextlib.nullcontext(0.0)
            async with slot as waited:
                started = True
                start = time.monotonic()
                if waited >= 0.001:  # worth a line only when the probe really queued
                    log.debug("Waited for a concurrency slot", wait_seconds=round(waited, 6))
                ctx = ProbeContext(target=target, module_name=module_name, module=module,
                                   timeout=max(timeout - waited, 0.0), metrics=metrics, log=log,
                                   params=params or {}, config=config, settings=settings or Settings())
                with resolver.bound_to(module, ctx.timeout):  # the module's dns_server, if any
                    success = await prober.probe(ctx)
    except BadRequest:
        raise
    except TimeoutError:
        if started:
            log.error("Timeout reached", timeout_seconds=timeout)
            timed_out = log.last_error + f" after {timeout:g}s"
        else:
            queued = limiter.queue_length(module_name) if limiter else 0
            log.error("Probe could not start before its deadline: too many probes running",
                      err=f"waited {time.monotonic() - arrived:.3f}s for a concurrency slot "
                          f"(module max_concurrency {module.max_concurrency or 'unlimited'}, global "
                          f"{(limiter.max_concurrent if limiter else 0) or 'unlimited'}, {queued} other probes "
                          "of this module waiting)")
            timed_out = log.last_error
    except Exception as err:  # a prober bug must not become a 500 for one target
        log.error("Probe failed with an internal error", err=f"{type(err).__name__}: {err}")
        trace = logs.scrub("".join(traceback.format_exception(err)), secrets)
        logs.log(logging.ERROR, "prober raised", module=module_name, target=shown_target, probe_id=probe_id,
                 traceback=trace)
    # The probe's own time: waiting for a slot is on /metrics (probe_exporter_probe_queue_wait_seconds),
    # except for a probe that never started, whose whole time was the wait.
    duration = time.monotonic() - start
    duration_gauge.set(duration)
    success_gauge.set(1 if success else 0)
    reason = "" if success else (timed_out or log.first_error or "probe failed")
    if success:
        log.info("Probe succeeded", duration_seconds=duration)
    else:
        log.error("Probe failed", duration_seconds=duration)
    outcome = ProbeOutcome(probe_id, module_name, shown_target, success, duration, metrics, log, reason)
    if not success:
        logs.log(logging.INFO, "Probe failed", module=module_name, target=shown_target, probe_id=probe_id,
                 result="failure", duration_seconds=round(duration, 6), reason=reason)
    return outcome


def debug_output(outcome: ProbeOutcome, module: Module) -> str:
    """The `debug=true` page, laid out as blackbox_exporter's DebugOutput."""
    from probe_exporter.config.render import module_as_yaml
    from probe_exporter.exposition import collect_sorted, render_text

    metrics_text = render_text(collect_sorted([outcome.metrics])).decode()
    return (f"Logs for the probe:\n{outcome.log.text()}\n\n\n"
            f"Metrics that would have been returned:\n{metrics_text}\n\n\n"
            f"Module configuration:\n{module_as_yaml(module)}")


def new_probe_id() -> int:
    """An id from the same sequence as run_probe's, for probes run outside it (the /snmp endpoint)."""
    return next(_probe_ids)
