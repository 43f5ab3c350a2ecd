from __future__ import annotations

import pytest

from probe_exporter.runner import compute_timeout


# blackbox_exporter's TestTimeoutIsSetCorrectly vectors: (module timeout, header, offset) -> timeout
@pytest.mark.parametrize(("module_timeout", "header", "offset", "expected"), [
    (0, "15", 0.5, 14.5), (0, "15", 0, 15), (20, "15", 0.5, 14.5), (5, "15", 0, 5), (10, "", 0.5, 10),
    (10, "10", 0.5, 9.5), (9.5, "", 1, 9.5), (0, "", 0.5, 119.5), (0, "", 0, 120),
    # quirks kept on purpose: a tiny header gives 0 without a module timeout, and the module timeout with one
    (0, "0.4", 0.5, 0), (5, "0.4", 0.5, 5), (0, "0", 0.5, 119.5),
])
def test_timeout_vectors(module_timeout: float, header: str, offset: float, expected: float) -> None:
    assert compute_timeout(header, offset, module_timeout) == pytest.approx(expected)


def test_bad_header_is_an_error() -> None:
    with pytest.raises(ValueError, match='parsing "abc": invalid syntax'):
        compute_timeout("abc", 0.5, 0)
