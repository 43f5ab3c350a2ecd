"""The landing page, server-rendered HTML: no scripts, one same-origin stylesheet (static/style.css).

It must work air-gapped, under a strict Content-Security-Policy (`default-src 'self'`) and on a phone:
one column, tables become cards on narrow screens, long targets wrap. Every value that comes from a
request or the config goes through `_e` (HTML escaping); secrets never reach this module (the debug
text shows them as `<secret>`).
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from probe_exporter import __version__
from probe_exporter.config.types import format_go_duration
from probe_exporter.exporter import Exporter
from probe_exporter.history import ProbeRecord
from probe_exporter.workers.history import RemoteRecord


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class FormResult:
    """What the "Run a probe" form shows: a finished probe, or why none ran."""

    record: ProbeRecord | None = None
    debug_text: str = ""
    error: str = ""
    module_name: str = ""
    target: str = ""
    extra_params: str = ""


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _result_cell(record: ProbeRecord | RemoteRecord) -> str:
    if record.success:
        return '<span class="ok">Success</span>'
    return '<strong class="fail">Failure</strong>'


def _history_rows(records: Sequence[ProbeRecord | RemoteRecord]) -> str:
    rows = []
    for record in records:
        outcome = record.outcome
        reason = f'<div class="muted">{_e(outcome.reason)}</div>' if outcome.reason else ""
        rows.append(
            f'<tr><td data-label="Finished">{_e(_when(record.finished_at))}</td>'
            f'<td data-label="Module">{_e(record.module_name)}</td>'
            f'<td class="target" data-label="Target">{_e(record.target)}</td>'
            f'<td data-label="Result"><div>{_result_cell(record)}{reason}</div></td>'
            f'<td data-label="Duration">{outcome.duration:.3f}s</td>'
            f'<td data-label="Debug"><a href="logs?{_e(urlencode({"id": record.probe_id}))}">Logs</a></td></tr>')
    if not rows:
        return '<tr><td colspan="6" class="muted">No probes yet.</td></tr>'
    return "".join(rows)


def _module_rows(exporter: Exporter) -> str:
    config = exporter.config
    rows = []
    for name, module in sorted(config.modules.items()):
        timeout = format_go_duration(module.timeout) if module.timeout else "scrape timeout"
        limits = []
        if module.max_concurrency:
            limits.append(f"max_concurrency {module.max_concurrency}")
        if module.allowed_targets:
            limits.append(f"allowed_targets: {len(module.allowed_targets)}")
        rows.append(f'<tr><td data-label="Module">{_e(name)}</td><td data-label="Prober">{_e(module.prober)}</td>'
                    f'<td data-label="Timeout">{_e(timeout)}</td>'
                    f'<td class="target" data-label="File">{_e(config.module_files.get(name, ""))}</td>'
                    f'<td data-label="Limits">{_e(", ".join(limits) or "none")}</td></tr>')
    return "".join(rows)


def _form(exporter: Exporter, result: FormResult | None) -> str:
    selected = result.module_name if result else ""
    names = sorted(exporter.config.modules)
    if not selected and "http_2xx" in names:
        selected = "http_2xx"
    options = "".join(f'<option value="{_e(n)}"{" selected" if n == selected else ""}>{_e(n)}</option>'
                      for n in names)
    target = _e(result.target) if result else ""
    extra = _e(result.extra_params) if result else ""
    return f"""<form id="probe-form" method="get" action="./">
<label for="module">Module</label><select id="module" name="module">{options}</select>
<label for="target">Target</label><input id="target" name="target" value="{target}" required
 placeholder="https://example.org or host:port" autocapitalize="off" autocorrect="off" spellcheck="false">
<label for="params">Parameters</label><input id="params" name="params" value="{extra}"
 placeholder="optional, e.g. hostname=example.org&amp;auth=public_v2" autocapitalize="off" spellcheck="false">
<button type="submit" id="run">Run probe</button>
</form>"""


def _form_result(result: FormResult | None) -> str:
    if result is None:
        return ""
    if result.error:
        return f'<div class="result error" id="probe-result"><strong>Not run:</strong> {_e(result.error)}</div>'
    record = result.record
    if record is None:
        return ""
    outcome = record.outcome
    status = "Success" if outcome.success else "Failure"
    reason = f"<div>Reason: {_e(outcome.reason)}</div>" if outcome.reason else ""
    css = "result" if outcome.success else "result failed"
    return (f'<div class="{css}" id="probe-result"><div><strong id="probe-status">{status}</strong> '
            f"— {_e(record.module_name)} → <span class=\"target\">{_e(record.target)}</span> "
            f"in {outcome.duration:.3f}s "
            f'(<a href="logs?{_e(urlencode({"id": record.probe_id}))}">log #{record.probe_id}</a> · '
            f'<a href="probe?{_e(urlencode({"module": record.module_name, "target": record.target}))}">'
            "run again as /probe</a>)</div>"
            f'{reason}<pre id="probe-debug">{_e(result.debug_text)}</pre></div>')


def landing_page(exporter: Exporter, result: FormResult | None = None,
                 records: Sequence[ProbeRecord | RemoteRecord] | None = None) -> str:
    """`records`: the history to show (every worker's, see workers/history.py); this worker's by default."""
    shown = exporter.history.records() if records is None else records
    limiter = exporter.limiter
    concurrency = (f"at most {limiter.max_concurrent} probes at once" if limiter.max_concurrent
                   else "no global concurrency limit")
    history = (f"last {exporter.history.limit} probes, older failures kept as many again"
               if exporter.history.limit else "history disabled (--history.limit=0)")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Probe Exporter</title><link rel="stylesheet" href="static/style.css"></head>
<body>
<header><h1>Probe Exporter</h1>
<div class="muted">Version {_e(__version__)} · {len(exporter.config.modules)} modules · {_e(concurrency)},
{limiter.queue_length()} waiting now</div>
<nav><a href="metrics">Metrics</a><a href="config">Configuration</a><a href="-/healthy">Health</a>
<a href="-/ready">Ready</a></nav></header>
<main>
<h2>Run a probe</h2>
{_form(exporter, result)}
{_form_result(result)}
<h2>Recent probes</h2>
<div class="muted">{_e(history)}; newest first.</div>
<div class="scroll"><table id="history" class="cards"><thead><tr><th>Finished (UTC)</th><th>Module</th><th>Target</th>
<th>Result</th><th>Duration</th><th>Debug</th></tr></thead><tbody>{_history_rows(shown)}</tbody></table></div>
<h2>Modules</h2>
<div class="scroll"><table id="modules" class="cards"><thead><tr><th>Module</th><th>Prober</th><th>Timeout</th>
<th>File</th><th>Limits</th></tr></thead><tbody>{_module_rows(exporter)}</tbody></table></div>
</main></body></html>
"""
