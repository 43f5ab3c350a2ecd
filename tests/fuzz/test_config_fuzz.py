"""Property tests: whatever bytes a config file holds, loading either works or raises ConfigError
with a one-line message naming the file — never another exception, never a hang."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_exporter.config import ConfigError, load_config

_KEYS = ["prober", "timeout", "http", "tcp", "dns", "icmp", "grpc", "method", "valid_status_codes",
         "preferred_ip_protocol", "query_response", "expect", "send", "query_name", "tls_config", "headers",
         "basic_auth", "password", "body_size_limit", "fail_if_body_matches_regexp", "ttl", "bogus"]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-300, 300), st.floats(allow_nan=False),
                     st.sampled_from(["http", "tcp", "dns", "icmp", "5s", "1d", "ip4", "ip6", "[", "^+OK", "1MB"]),
                     st.text(max_size=12))
_VALUES: Any = st.recursive(_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)), max_leaves=12)


def _load(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        try:
            load_config([str(path)])
        except ConfigError as err:
            message = str(err)
            assert message.startswith(f"error parsing config file: {path}")
            assert "\n" not in message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(min_size=1, max_size=8), _VALUES, max_size=3))
def test_random_modules_load_or_fail_cleanly(modules: dict[str, Any]) -> None:
    _load(yaml.safe_dump({"modules": modules}))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_load_or_fail_cleanly(data: bytes) -> None:
    _load(data)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("modules:prober http\n -[]{}&*!<>|'\"#%@`,?")), max_size=120))
def test_yaml_syntax_noise_loads_or_fails_cleanly(text: str) -> None:
    _load(text)
