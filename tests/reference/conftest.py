"""The reference comparisons probe the same local servers as the prober tests."""

from tests.probers.conftest import (  # noqa: F401 - fixtures, used by name
    http_server,
    https_h1_server,
    https_server,
    tls_material,
)
