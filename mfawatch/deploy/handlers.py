"""The Lambda handlers of the Chalice app in ``app.py``: what every template and the self-test
cover, read from the app itself so they never drift from what ``chalice deploy`` creates.
"""

from __future__ import annotations

import sys

from chalicelib.core.errors import ConfigError
from mfawatch.paths import REPO_ROOT


def app_handler_names() -> list[str]:
    """The Lambda handlers the Chalice app in ``app.py`` registers (one function each).

    Event sources (``on_cw_event``, ``schedule``, ...) and pure ``lambda_function`` handlers.
    A REST or WebSocket API would add functions this deployment does not configure, so it is an
    error rather than a silent gap.
    """
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import app as app_module  # the deployed wiring; imports boto3 but calls nothing

    chalice_app = app_module.app
    if getattr(chalice_app, "routes", None) or getattr(chalice_app, "websocket_handlers", None):
        raise ConfigError("app.py defines an API; deploy templates cover events only")
    names = [source.name for source in chalice_app.event_sources]
    names += [function.name for function in chalice_app.pure_lambda_functions]
    return sorted(names)
