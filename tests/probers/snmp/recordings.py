"""Where the SNMP tests and benchmarks get their device data: read in place, never copied into the repo.

- snmp_exporter's generated snmp.yml (53 modules) from the steering repo's shared/ folder.
- snmpsim's `cisco_16_switch` recording (59 interfaces) from Debian's snmpsim package, cut to the
  system group, ifTable and ifXTable (2,742 OIDs) so the agent indexes it quickly.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.support.paths import SHARED, require_file

SHARED_SNMP_YML = SHARED / "snmp_exporter" / "snmp.yml"
CISCO_16_SWITCH_GZ = Path("/usr/share/doc/snmpsim/examples/data/cisco_16_switch.snmprec.gz")
_SUBTREES = ("1.3.6.1.2.1.1.", "1.3.6.1.2.1.2.", "1.3.6.1.2.1.31.1.")


def shared_snmp_yml() -> Path:
    return require_file(SHARED_SNMP_YML)


def write_cisco_16_switch(directory: Path) -> Path:
    """Write cisco_16_switch.snmprec (system, ifTable, ifXTable) into `directory`; returns its path."""
    raw = gzip.decompress(require_file(CISCO_16_SWITCH_GZ).read_bytes()).decode("latin-1")
    lines = [line for line in raw.splitlines() if line.startswith(_SUBTREES)]
    path = directory / "cisco_16_switch.snmprec"
    path.write_text("".join(line + "\n" for line in lines), encoding="latin-1")
    return path
