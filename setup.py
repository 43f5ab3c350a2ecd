"""The one part of the build pyproject.toml cannot declare: the optional C parts of the SNMP prober, the
varbind reader (_berfast.c) and the renderer of plain gauges and counters (_renderfast.c).

`optional=True`: without a C compiler the build goes on without them, and ber.py and render.py do that
work in Python.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(f"probe_exporter.probers.snmp.{name}", [f"probe_exporter/probers/snmp/{name}.c"],
                             optional=True) for name in ("_berfast", "_renderfast")])
