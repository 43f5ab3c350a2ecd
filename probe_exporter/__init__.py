"""probe_exporter: a multi-target probe exporter for Prometheus."""

__version__ = "0.1.0"
