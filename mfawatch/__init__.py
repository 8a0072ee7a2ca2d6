"""mfawatch: the offline toolkit: pattern engine, archive replay, rule build, templates, CLI,
the Athena backtest.

Never deployed: Chalice packages only ``app.py`` and ``chalicelib/``. This package imports
:mod:`chalicelib` (the code that runs in Lambda); chalicelib never imports it.
"""

from chalicelib import __version__

__all__ = ["__version__"]
