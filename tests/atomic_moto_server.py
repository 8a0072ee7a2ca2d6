"""``moto_server`` with DynamoDB's atomicity: one request at a time.

DynamoDB applies each write, condition included, atomically: of two concurrent conditional writes
on one item, one fails ("a conditional write succeeds only if the item attributes meet the
conditions", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
WorkingWithItems.html#WorkingWithItems.ConditionalUpdate). moto_server serves requests on threads
and checks a condition, then writes, without a lock, so both can succeed there. Concurrency tests
must test our code against DynamoDB's contract, not moto's race: this server runs moto's own WSGI
application behind a lock (connections are still accepted concurrently).

Usage: python tests/atomic_moto_server.py -p PORT [-H 127.0.0.1]
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class Serialized:
    """A WSGI application that handles one request at a time, body included."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        Serialized(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
