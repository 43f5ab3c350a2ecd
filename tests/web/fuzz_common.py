"""What both fuzz suites share: the modules they probe with (every one times out after 1 s, and only local
targets answer) and the check of the scrape-timeout header's 500."""

from __future__ import annotations

from tests.support.paths import REPO


def fuzz_modules(sqlite_alias: str = "demo", extra: str = "") -> str:
    """The config text; `sqlite_alias` names the SQLite demo target, `extra` adds modules (indented by 2)."""
    return f"""
auths:
  public_v2: {{community: public, version: 2}}
modules:
  http_2xx: {{prober: http, timeout: 1s}}
  tcp_connect: {{prober: tcp, timeout: 1s}}
  dns_udp:
    prober: dns
    timeout: 1s
    dns: {{query_name: example.org, preferred_ip_protocol: ip4}}
  sqlite_demo:
    prober: sql
    timeout: 1s
    sql:
      driver: sqlite
      targets: {{{sqlite_alias}: {{seed_script: {REPO}/modules/sql/demo.sql}}}}
      collector_files: [{REPO}/modules/sql/demo.collector.yml]
  if_mib:
    walk: [1.3.6.1.2.1.1.5]
    timeout: 1s
    retries: 0
    metrics:
    - {{name: sysName, oid: 1.3.6.1.2.1.1.5, type: DisplayString, help: The name of the node}}
{extra}"""


def is_number(text: str) -> bool:
    """Whether a scrape-timeout header parses: if not, the 500 is blackbox_exporter's own."""
    try:
        float(text)
    except ValueError:
        return False
    return True
