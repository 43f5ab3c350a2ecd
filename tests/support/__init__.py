"""Plain helpers the tests share: real servers to probe, probe runners, paths and external checkers.

Fixtures stay in the conftest files; they import what they need from here.
"""
