"""``python -m mfawatch`` runs the command line (the ``mfawatch`` console script)."""

from mfawatch.cli import run

run()
