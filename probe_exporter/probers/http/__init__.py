"""The HTTP prober (probe_http), with what it needs: the per-module client, the body reader, the
exchange of one hop, redirects, timings, the checks that decide success, and HTTP/3."""

from probe_exporter.config.blackbox import HTTPProbe
from probe_exporter.probers.base import Prober
from probe_exporter.probers.http.client import USER_AGENT
from probe_exporter.probers.http.probe import preload, probe_http, shutdown

PROBER = Prober(name="http", probe=probe_http, config_model=HTTPProbe, preload=preload, shutdown=shutdown)

__all__ = ["PROBER", "USER_AGENT", "preload", "probe_http", "shutdown"]
