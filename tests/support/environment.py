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


def share_service_models() -> None:
    """Every botocore session this test process creates reads the service models through one
    loader (per data path). A session builds its own loader, which parses the JSON of each
    service model and of the endpoint rules again (tens of milliseconds per client): the tests
    make hundreds of sessions, under ``mock_aws`` and against moto_server. A loader only reads
    and caches files that never change during a run, so sharing it changes no request."""
    import botocore.loaders
    import botocore.session

    if getattr(botocore.session.create_loader, "shared", False):
        return
    create = botocore.loaders.create_loader
    loaders: dict[str | None, botocore.loaders.Loader] = {}

    def create_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = create(search_path_string)
        return loaders[search_path_string]

    create_loader.shared = True  # type: ignore[attr-defined]
    botocore.session.create_loader = create_loader
