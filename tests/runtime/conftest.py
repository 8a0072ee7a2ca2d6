"""The runtime tier's fixtures, defined in :mod:`tests.support.runtime` (shared with its tests):
the packaged dev stage, the stage resources on moto_server, and one running execution environment
per function."""

from __future__ import annotations

from tests.support.runtime import functions, package, runtime_packages, stack

__all__ = ["functions", "package", "runtime_packages", "stack"]
