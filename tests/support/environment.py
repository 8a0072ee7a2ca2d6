"""The environment the tests run in: what a user's shell may export for mfawatch itself must not
reach the tests."""

from __future__ import annotations

from collections.abc import MutableMapping

#: Where the SDK sends every call (``AWS_ENDPOINT_URL``) or one service's calls
#: (``AWS_ENDPOINT_URL_<SERVICE>``). docs/deploy.md has users export it to try a deploy on
#: moto_server; left in, it would send the functional tier's calls past moto's in-process mock
#: to that server. The tests that want a server (``moto_server``) pass its URL themselves.
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"


def drop_endpoint_overrides(environ: MutableMapping[str, str]) -> list[str]:
    """Remove the SDK's endpoint variables from ``environ``; return the names removed."""
    names = sorted(
        name
        for name in environ
        if name == ENDPOINT_VARIABLE or name.startswith(f"{ENDPOINT_VARIABLE}_")
    )
    for name in names:
        del environ[name]
    return names
