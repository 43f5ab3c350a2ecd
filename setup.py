"""The one part of the build pyproject.toml cannot declare: the optional C reader of SNMP varbinds.

`optional=True`: without a C compiler the build goes on without it, and ber.py reads varbinds in Python.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("probe_exporter.probers.snmp._berfast", ["probe_exporter/probers/snmp/_berfast.c"],
                             optional=True)])
