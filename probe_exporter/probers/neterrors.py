"""Socket and TLS errors as one short line, close to Go's wording (`connection refused`)."""

from __future__ import annotations

import os
import ssl


def describe_os_error(err: BaseException) -> str:
    """`connection refused` rather than `[Errno 111] Connect call failed ('127.0.0.1', 1)`."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"tls: {err.verify_message or err.reason or err}"
    if isinstance(err, ssl.SSLError):
        return f"tls: {err.reason or err}"
    if isinstance(err, OSError) and (err.errno or err.strerror):
        # asyncio replaces strerror with "Connect call failed (...)"; the errno text is what matters.
        text = os.strerror(err.errno) if err.errno else str(err.strerror)
        return text[:1].lower() + text[1:]
    return str(err) or type(err).__name__
