"""One probe, from request to outcome. Every route that probes (/probe, /snmp, the landing page form)
and the `probe` CLI command turn their input into a `ProbeRequest`, call `run`, and turn the
`ProbeOutcome` into their response. `run` does, in this order and nowhere else:

1. modules: the requested names looked up (several SNMP modules make one probe);
2. deadline: blackbox_exporter's getTimeout, quirks included (or the caller's fixed timeout);
3. target policy: a target with a control character is a 400; every module's allowed_targets (403
   before anything touches the target, checked on the URL with its path decoded and dot segments removed);
4. limiter: a concurrency slot, waited for within the deadline (503 when none frees up in time);
5. prober run(s): `registry.get(prober).probe(ctx)`, or snmp_exporter's scrape for /snmp;
6. self-metrics, 7. history, 8. debug text (built from the outcome when someone asks for it).

The outcome says whose failure it is: `Verdict.PROBED` (200; probe_success tells how the target
did), `BAD_REQUEST` (400), `REFUSED` (403), `BAD_TIMEOUT_HEADER` (500, as blackbox_exporter) and
`NOT_STARTED` (503: the exporter was too busy, the target is not to blame).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from probe_exporter import logs, registry
from probe_exporter.config import Config, Module
from probe_exporter.config.secrets import secret_values
from probe_exporter.gotext import go_quote
from probe_exporter.history import ProbeHistory
from probe_exporter.limits import (
    MODULE_LIMIT,
    TARGET_LIMIT,
    ProbeLimiter,
    SlotWait,
    TargetNotAllowed,
    check_target,
    control_character,
)
from probe_exporter.modulecache import CacheKey
from probe_exporter.probe_metrics import ProbeMetrics
from probe_exporter.probers import resolver
from probe_exporter.probers.base import BadRequest, ProbeContext
from probe_exporter.selfmetrics import SelfMetrics
from probe_exporter.settings import Settings

if TYPE_CHECKING:
    from probe_exporter.registry import Prober

DEFAULT_SCRAPE_TIMEOUT = 120.0
# Kept back from /snmp's deadline for the scrape, so its own timeout (with a per-module reason)
# comes before the pipeline's cancellation.
SNMP_DEADLINE_MARGIN = 0.05

_probe_ids = itertools.count()


class Verdict(enum.IntEnum):
    """Whose failure it is, as the HTTP status a route answers with."""

    PROBED = 200
    BAD_REQUEST = 400
    REFUSED = 403
    BAD_TIMEOUT_HEADER = 500
    NOT_STARTED = 503


@dataclass(frozen=True)
class ProbeRequest:
    module_names: Sequence[str]
    target: str
    # Every query parameter (first value of each), for prober-specific ones (hostname, auth).
    params: Mapping[str, str] = field(default_factory=dict)
    # The `probe_exporter_bad_requests_total` label: probe, snmp, form or cli.
    endpoint: str = "probe"
    scrape_timeout_header: str | None = None
    # A fixed deadline instead of the scrape-timeout header (the form, the CLI): the module's
    # timeout when it is set and shorter.
    timeout: float | None = None
    # /snmp: snmp_exporter's semantics (its 400 texts, no module timeout, stop at the first failing
    # module, errors per module for its HTTP 500).
    snmp_exporter: bool = False


class ExporterState(Protocol):
    """What the pipeline needs of the running exporter (probe_exporter.exporter.Exporter)."""

    @property
    def config(self) -> Config: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def metrics(self) -> SelfMetrics: ...
    @property
    def history(self) -> ProbeHistory: ...
    @property
    def limiter(self) -> ProbeLimiter: ...


@dataclass
class StandaloneState:
    """An exporter state for one-off probes (the `probe` CLI command): no limits, no history."""

    config: Config
    settings: Settings = field(default_factory=Settings)
    metrics: SelfMetrics = field(default_factory=SelfMetrics)
    history: ProbeHistory = field(default_factory=lambda: ProbeHistory(0))
    limiter: ProbeLimiter = field(default_factory=ProbeLimiter)


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
    verdict: Verdict = Verdict.PROBED
    # The first module (the one whose configuration the debug text shows).
    module: Module | None = None
    # /snmp: (module, reason) of each module that failed; any makes snmp_exporter's HTTP 500.
    module_errors: list[tuple[str, str]] = field(default_factory=list)
    # /snmp: whether each module was scraped successfully (a module after a failing one is not scraped).
    module_success: dict[str, bool] = field(default_factory=dict)
    # NOT_STARTED: the limit that was full (limits.MODULE_LIMIT or GLOBAL_LIMIT).
    full_limit: str = ""

    def debug_text(self) -> str:
        """The `debug=true` page, laid out as blackbox_exporter's DebugOutput."""
        from probe_exporter.config.render import module_as_yaml
        from probe_exporter.exposition import collect_sorted, render_text

        metrics_text = render_text(collect_sorted([self.metrics])).decode()
        module_text = module_as_yaml(self.module) if self.module is not None else ""
        return (f"Logs for the probe:\n{self.log.text()}\n\n\n"
                f"Metrics that would have been returned:\n{metrics_text}\n\n\n"
                f"Module configuration:\n{module_text}")

    def with_metrics(self, metrics: ProbeMetrics) -> ProbeOutcome:
        return dataclasses.replace(self, metrics=metrics)


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


# --- the pipeline ---------------------------------------------------------------------------------------


async def run(state: ExporterState, request: ProbeRequest) -> ProbeOutcome:
    """Every step of one probe request, in order (see the module docstring)."""
    config = state.config
    joined = ",".join(request.module_names)
    resolved = _resolve_modules(request, config)
    if isinstance(resolved, str):
        if not request.snmp_exporter:
            state.metrics.unknown_module.inc()
        return _not_probed(state, request, joined, Verdict.BAD_REQUEST, resolved)
    modules = resolved
    first = modules[0][1]
    try:
        timeout = _deadline(request, state.settings.timeout_offset, 0.0 if request.snmp_exporter else first.timeout)
    except ValueError as err:
        return _not_probed(state, request, joined, Verdict.BAD_TIMEOUT_HEADER,
                           f"Failed to parse timeout from Prometheus header: {err}")
    if not request.target:
        return _not_probed(state, request, joined, Verdict.BAD_REQUEST, "Target parameter is missing")
    control = control_character(request.target)
    if control is not None:
        return _not_probed(state, request, joined, Verdict.BAD_REQUEST,
                           f"Target contains a control character (U+{ord(control):04X})")
    for module_name, module in modules:
        try:
            check_target(module_name, module, request.target)
        except TargetNotAllowed as err:
            state.metrics.targets_denied.labels(module_name).inc()
            logs.log(logging.INFO, "Target not allowed", module=module_name, target=logs.mask_target(request.target),
                     result="denied", reason=str(err))
            return _not_probed(state, request, joined, Verdict.REFUSED, str(err), count=False)
    params = dict(request.params)
    if len(modules) > 1:  # the SNMP prober reads the modules to combine from `module`
        params["module"] = joined
    job = _Job(joined, modules, request.target, timeout, params, config, request.snmp_exporter, state.settings)
    in_flight = state.metrics.in_flight_for(joined)
    in_flight.inc()
    try:
        limit = max(module.max_concurrency for _, module in modules)
        per_target = max(module.max_concurrency_per_target for _, module in modules)
        outcome = await _execute(job, lambda wait: state.limiter.slot(joined, limit, wait, request.target, per_target),
                                 state.limiter)
    except BadRequest as err:
        return _not_probed(state, request, joined, Verdict.BAD_REQUEST, str(err).replace("\n", "\\n"))
    finally:
        in_flight.dec()
    if outcome.verdict is Verdict.NOT_STARTED:
        state.metrics.probes_not_started.labels(joined, outcome.full_limit).inc()
    elif request.snmp_exporter:
        for module_name, module in modules:
            state.metrics.observe_probe(module_name, module.prober, outcome.module_success.get(module_name, False),
                                        outcome.duration)
    else:
        state.metrics.observe_probe(joined, first.prober, outcome.success, outcome.duration)
    state.history.add(outcome, first)
    return outcome


async def run_probe(module_name: str, module: Module, target: str, timeout: float,
                    params: Mapping[str, str] | None = None, config: Config | None = None,
                    settings: Settings | None = None) -> ProbeOutcome:
    """Only the prober run (no policy, limits or bookkeeping), for tests and benchmarks of a prober.
    Raises BadRequest for a 400."""
    job = _Job(module_name, [(module_name, module)], target, timeout, dict(params or {}), config, False,
               settings or Settings())
    return await _execute(job, lambda wait: contextlib.nullcontext(0.0), None)


def _resolve_modules(request: ProbeRequest, config: Config) -> list[tuple[str, Module]] | str:
    """The requested modules, or a one-line reason for a 400 (in the endpoint's own words)."""
    modules: list[tuple[str, Module]] = []
    for name in request.module_names:
        module = config.modules.get(name)
        if request.snmp_exporter:
            if module is None or module.prober != "snmp":
                return f"Unknown module '{name}'"
        elif module is None:
            return f"Unknown module {go_quote(name)}"
        elif len(request.module_names) > 1 and module.prober != "snmp":
            return f'module "{name}" is not an SNMP module; only SNMP modules can be combined'
        modules.append((name, module))
    if not modules:
        return "'module' parameter must contain at least one module name"
    auth = request.params.get("auth")
    if request.snmp_exporter and auth is not None and auth not in config.snmp_auths:
        return f"Unknown auth '{auth}'"
    return modules


def _deadline(request: ProbeRequest, offset: float, module_timeout: float) -> float:
    if request.timeout is not None and not request.scrape_timeout_header:
        return module_timeout if 0 < module_timeout < request.timeout else request.timeout
    return compute_timeout(request.scrape_timeout_header, offset, module_timeout)


def _not_probed(state: ExporterState, request: ProbeRequest, module_name: str, verdict: Verdict, reason: str,
                count: bool = True) -> ProbeOutcome:
    if count and verdict is Verdict.BAD_REQUEST:
        state.metrics.bad_requests.labels(request.endpoint).inc()
    shown = logs.mask_target(request.target)
    return ProbeOutcome(-1, module_name, shown, False, 0.0, ProbeMetrics(), logs.ProbeLog(module=module_name,
                        target=shown), reason, verdict)


# --- running the prober(s) ------------------------------------------------------------------------------


@dataclass
class _Job:
    module_name: str   # the modules' names, comma-joined when several are combined
    modules: list[tuple[str, Module]]
    target: str
    timeout: float
    params: dict[str, str]
    config: Config | None
    snmp_exporter: bool
    settings: Settings


class _SlotFactory(Protocol):
    def __call__(self, wait: SlotWait) -> contextlib.AbstractAsyncContextManager[float]: ...


_SUCCESS = ("probe_success", "Displays whether or not the probe was a success")
_DURATION = ("probe_duration_seconds", "Returns how long the probe took to complete in seconds")
# blackbox_exporter master (#1571): the deadline the probe ran with.
_TIMEOUT = ("probe_timeout_seconds", "Returns how long the probe timeout is in seconds")


# The module's secret values, scrubbed from library error text in its probes' logs.
SECRET_VALUES = CacheKey[frozenset[str]]("secret_values")


def _new_outcome(job: _Job) -> ProbeOutcome:
    """The outcome before the probe runs: its id, its log (secrets scrubbed) and, blackbox-style, the
    three gauges every probe has (registered first, so a failure still shows them)."""
    first = job.modules[0][1]
    config = job.config
    secrets = first.cached(SECRET_VALUES, lambda: secret_values(
        first, *(config.snmp_auths.values() if config is not None and first.prober == "snmp" else ())))
    probe_id = next(_probe_ids)
    shown_target = logs.mask_target(job.target)
    log = logs.ProbeLog(secrets, module=job.module_name, target=shown_target)
    log.forward_context["probe_id"] = probe_id
    metrics = ProbeMetrics()
    if not job.snmp_exporter:
        metrics.gauge(*_SUCCESS)
        metrics.gauge(*_DURATION)
        metrics.gauge(*_TIMEOUT).set(job.timeout)
    return ProbeOutcome(probe_id, job.module_name, shown_target, False, 0.0, metrics, log, module=first)


async def _execute(job: _Job, slot: _SlotFactory, limiter: ProbeLimiter | None) -> ProbeOutcome:
    """Wait for a slot and run the prober(s), all within the deadline. Raises BadRequest for a 400."""
    first = job.modules[0][1]
    prober = _prober_of(first) if not job.snmp_exporter else None
    outcome = _new_outcome(job)
    log, timeout = outcome.log, job.timeout
    log.info("Beginning probe", probe=first.prober, timeout_seconds=timeout)
    wait = SlotWait()
    start = time.monotonic()
    started = False
    timed_out = ""
    try:
        if timeout <= 0:
            started = True  # nothing to wait for: the deadline has passed already
            raise TimeoutError
        async with asyncio.timeout(timeout), slot(wait) as waited:
            started = True
            start = time.monotonic()  # a probe that starts late reports its own duration
            if waited >= 0.001:  # worth a line only when the probe really queued
                log.debug("Waited for a concurrency slot", wait_seconds=round(waited, 6))
            ctx = ProbeContext(target=job.target, module_name=job.modules[0][0], module=first,
                               timeout=max(timeout - waited, 0.0), metrics=outcome.metrics, log=log,
                               params=job.params, config=job.config, settings=job.settings)
            with resolver.bound_to(first, ctx.timeout):  # the module's dns_server, if any
                if prober is not None:
                    outcome.success = await prober.probe(ctx)
                else:
                    outcome.success = await _scrape_snmp_exporter(ctx, job.modules, outcome)
    except BadRequest:
        raise
    except TimeoutError:
        if not started:
            return _not_started(outcome, job, wait, limiter)
        log.error("Timeout reached", timeout_seconds=timeout)
        timed_out = log.last_error + f" after {timeout:g}s"
        if job.snmp_exporter and not outcome.module_errors:
            outcome.module_errors.append((job.modules[0][0], timed_out))
    except Exception as err:  # a prober bug must not become a 500 for one target
        log.error("Probe failed with an internal error", err=f"{type(err).__name__}: {err}")
        logs.log(logging.ERROR, "prober raised", module=job.module_name, target=outcome.target,
                 probe_id=outcome.probe_id, traceback=logs.scrub("".join(traceback.format_exception(err)), log.secrets))
        if job.snmp_exporter:
            outcome.module_errors.append((job.modules[0][0], log.last_error))
    return _finished(outcome, job, time.monotonic() - start, timed_out)


def _finished(outcome: ProbeOutcome, job: _Job, duration: float, timed_out: str) -> ProbeOutcome:
    """probe_success and probe_duration_seconds set, the reason of a failure chosen and logged."""
    # The probe's own time: waiting for a slot is on /metrics (probe_exporter_probe_queue_wait_seconds).
    outcome.duration = duration
    success = outcome.success = outcome.success and not outcome.module_errors
    if not job.snmp_exporter:
        outcome.metrics.gauge(*_DURATION).set(duration)
        outcome.metrics.gauge(*_SUCCESS).set(1 if success else 0)
    log = outcome.log
    outcome.reason = "" if success else (
        timed_out or (outcome.module_errors[0][1] if outcome.module_errors else "") or log.first_error
        or "probe failed")
    if success:
        log.info("Probe succeeded", duration_seconds=duration)
    else:
        log.error("Probe failed", duration_seconds=duration)
        logs.log(logging.INFO, "Probe failed", module=job.module_name, target=outcome.target,
                 probe_id=outcome.probe_id, result="failure", duration_seconds=round(duration, 6),
                 reason=outcome.reason)
    return outcome


def _prober_of(module: Module) -> Prober:
    try:
        return registry.get(module.prober)
    except registry.UnknownProber:
        raise BadRequest(f'Unknown prober "{module.prober}"') from None


def _not_started(outcome: ProbeOutcome, job: _Job, wait: SlotWait, limiter: ProbeLimiter | None) -> ProbeOutcome:
    """The deadline passed while the probe waited for a slot: the exporter's failure (503), with one
    line that says which limit was full."""
    limit = wait.stage or MODULE_LIMIT
    if limit == MODULE_LIMIT:
        which = f"module max_concurrency {max(m.max_concurrency for _, m in job.modules)}"
    elif limit == TARGET_LIMIT:
        which = f"max_concurrency_per_target {max(m.max_concurrency_per_target for _, m in job.modules)}"
    else:
        which = f"global --probes.max-concurrency {limiter.max_concurrent if limiter else 0}"
    queued = limiter.queue_length(job.module_name) if limiter else 0
    outcome.verdict = Verdict.NOT_STARTED
    outcome.duration = wait.waited
    outcome.reason = (f"Probe could not start before its deadline ({job.timeout:g}s): {which} reached, "
                      f"{queued} other probes of this module waiting")
    outcome.full_limit = limit
    outcome.log.error("Probe not started: too many probes running", err=outcome.reason)
    logs.log(logging.WARNING, "Probe not started", module=job.module_name, target=outcome.target,
             probe_id=outcome.probe_id, result="not_started", limit=limit, reason=outcome.reason)
    return outcome


async def _scrape_snmp_exporter(ctx: ProbeContext, modules: list[tuple[str, Module]], outcome: ProbeOutcome) -> bool:
    """snmp_exporter's /snmp: the modules in order, stopping at the first that fails; its samples and
    scrape gauges as the metrics, each failure in the outcome's module_errors."""
    from probe_exporter.probers.snmp.scrape import scrape

    deadline = asyncio.get_running_loop().time() + max(ctx.timeout - SNMP_DEADLINE_MARGIN, 0.0)
    result = await scrape(ctx.target, modules, ctx.config, ctx.params, deadline, ctx.log, stop_on_error=True,
                          wrap_counters=ctx.settings.snmp_wrap_large_counters,
                          module_concurrency=ctx.settings.snmp_module_concurrency, settings=ctx.settings)
    for family in result.all_families():
        ctx.metrics.add_family(family)
    outcome.module_errors.extend((module.name, module.error) for module in result.modules if module.error)
    outcome.module_success.update((module.name, module.success) for module in result.modules)
    return not outcome.module_errors
