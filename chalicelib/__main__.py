"""``python -m chalicelib`` is ``python -m chalicelib.cli``."""

from chalicelib.cli import run

run()
