"""mfawatch: seconds-fast alerts for failed MFA sign-ins across an AWS Organization."""

__version__ = "0.1.0"
