"""The open-files limit (RLIMIT_NOFILE): raised at startup as Go programs do, and read to size the
default concurrency limit (probe_exporter.limits.default_max_concurrency).

systemd and most shells start services with a soft limit of 1024; Go raises its soft limit to the
hard one by itself, so blackbox_exporter can hold thousands of connections at once. A Python process
must do the same, or a busy exporter fails probes for lack of file descriptors.
"""

from __future__ import annotations

import resource

# What to assume where the limit cannot be read (RLIM_INFINITY, or no getrlimit).
UNLIMITED_FILES = 1 << 20


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE now."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return UNLIMITED_FILES
    return UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one; returns (before, after). Where the hard limit is
    unlimited, macOS-style kernels refuse it: the soft limit then stays as it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        return soft, soft
    return soft, hard
