"""The toolkit's own errors: subclasses of the one hierarchy in :mod:`chalicelib.core.errors`, kept
here because the Lambda package never raises them (the Lambda zip carries only what it runs).

:class:`mfawatch.patterns.engine.InvalidPatternError` stays beside the pattern engine: it is the
engine's public API and phrased like AWS's ``InvalidEventPatternException``.
"""

from __future__ import annotations

from chalicelib.core.errors import MfawatchError


class ArchiveReadError(MfawatchError):
    """An archive object could not be listed or read (S3 error, permissions, ...)."""


class ForwarderConfigError(MfawatchError):
    """An option of the forwarder template is invalid; the message names the option."""


class AuditError(MfawatchError):
    """An account could not be audited (role not assumable, access denied, ...)."""


class AthenaError(MfawatchError):
    """Bad backtest input (a name that cannot be put in SQL) or a failed Athena query."""


class AthenaQueryError(AthenaError):
    """A query could not be started, failed or was cancelled; the message has Athena's reason."""


class RedriveError(MfawatchError):
    """Reading the dead-letter queue or sending its messages back failed."""
