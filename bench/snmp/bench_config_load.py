"""Loading snmp_exporter's generated snmp.yml (2 MB, 53 modules): YAML parse vs validation vs the
per-module scrape plans built on first use.

    .venv/bin/python bench/snmp/bench_config_load.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from probe_exporter.config import load_config  # noqa: E402
from probe_exporter.config import snmp as snmp_config  # noqa: E402
from probe_exporter.config.yamlfile import load_yaml  # noqa: E402
from probe_exporter.probers.snmp.scrape import plan_of  # noqa: E402
from tests.probers.snmp import recordings  # noqa: E402


def main() -> None:
    raw = recordings.shared_snmp_yml().read_bytes()
    with tempfile.NamedTemporaryFile(suffix=".yml") as handle:
        handle.write(raw)
        handle.flush()
        start = time.perf_counter()
        data, lines = load_yaml(raw, handle.name)
        parsed = time.perf_counter()
        snmp_config.parse_snmp_file(data["auths"], data["modules"], lines, handle.name)
        validated = time.perf_counter()
        config = load_config([handle.name])
        loaded = time.perf_counter()
        for module in config.modules.values():
            plan_of(module)
        planned = time.perf_counter()
    print(f"YAML parse (libyaml + line map): {parsed - start:6.3f} s")
    print(f"validation (pydantic, 53 modules): {validated - parsed:6.3f} s")
    print(f"load_config end to end:          {loaded - validated:6.3f} s")
    print(f"scrape plans for all 53 modules:  {planned - loaded:6.3f} s (built lazily, per module, on first use)")


if __name__ == "__main__":
    main()
