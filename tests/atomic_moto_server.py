"""``moto_server`` with DynamoDB's atomicity: one request at a time.

DynamoDB applies each write, condition included, atomically: of two concurrent conditional writes
on one item, one fails ("a conditional write succeeds only if the item attributes meet the
conditions", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
WorkingWithItems.html#WorkingWithItems.ConditionalUpdate). moto_server serves requests on threads
and checks a condition, then writes, without a lock, so both can succeed there. Concurrency tests
must test our code against DynamoDB's contract, not moto's race: this server runs moto's own WSGI
application behind a lock (connections are still accepted concurrently).

It also evaluates a stack's outputs and exports when a change set is executed, as AWS does:
moto 5.2.5 applies the change set's resources but leaves the outputs of the stack as they were
(none, for a stack created by a change set), so ``mfawatch deploy`` would see a resources stack
without outputs (:func:`change_sets_evaluate_outputs`).

And it finds each request's backend once per host and each response class's methods once
(:func:`cached_dispatch`): moto 5.2.5 lists its package folder (a ``stat`` per service), tries
every service's URL pattern and lists the class's members with ``inspect`` on every request,
together a quarter of the server's CPU time in the tests. And its CloudFormation reads templates
with libyaml (:func:`templates_read_by_libyaml`).

Usage: python tests/atomic_moto_server.py -p PORT [-H 127.0.0.1]
"""

from __future__ import annotations

import argparse
import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

import yaml
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


def cached_dispatch(app: DomainDispatcherApplication) -> DomainDispatcherApplication:
    """``app`` finding the backend of each host once, and moto's response classes listing their
    action methods once: the answers depend on the host or the class alone (moto's package
    folders, URL patterns and classes do not change while it runs; moto only tests the list of
    methods for membership)."""
    from moto.core import responses

    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    app.get_backend_for_host = functools.cache(app.get_backend_for_host)
    return app


def change_sets_evaluate_outputs() -> None:
    """After ``ExecuteChangeSet``, recompute the stack's outputs and register its exports, as
    moto's own ``UpdateStack`` and ``CreateStack`` do (moto/cloudformation/models.py)."""
    from moto.cloudformation.models import CloudFormationBackend

    execute = CloudFormationBackend.execute_change_set

    def execute_and_evaluate(
        self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
    ) -> None:
        execute(self, change_set_name, stack_name)
        for change_set in self.change_sets.values():
            if change_set_name in (change_set.change_set_id, change_set.change_set_name):
                stack = self.stacks[change_set.stack_id]
                stack._parse_template()
                stack.output_map = stack._create_output_map()
                for export in stack.exports:
                    self.exports[export.name] = export

    # A patch of moto's backend, by design (see above).
    CloudFormationBackend.execute_change_set = execute_and_evaluate


class _YamlWithLibyamlLoader:
    """The ``yaml`` module as moto's CloudFormation modules use it, with ``Loader`` libyaml's."""

    def __init__(self, loader: type) -> None:
        self.Loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(yaml, name)


def templates_read_by_libyaml() -> None:
    """moto 5.2.5's CloudFormation reads every template body, JSON ones too, with PyYAML's
    pure-Python ``yaml.Loader``, several times a request (the stack's, the change set's, the
    comparison of the two): a third of the server's CPU time in the deploy tests. PyYAML's
    ``CLoader`` is the same constructor and resolver over libyaml's parser, which raises the same
    ``ScannerError`` and ``ParserError`` (moto's cue to read the body as JSON), so the documents
    are the same, several times faster. Without libyaml, nothing changes."""
    if not yaml.__with_libyaml__:
        return
    from moto.cloudformation import models, responses
    from moto.cloudformation.utils import yaml_tag_constructor

    class TemplateLoader(yaml.CLoader):
        """libyaml's loader with moto's constructor of short-form intrinsics (``!Ref``, ...)."""

    TemplateLoader.add_multi_constructor("", yaml_tag_constructor)
    # A patch of moto's modules, by design (see above).
    models.yaml = responses.yaml = _YamlWithLibyamlLoader(TemplateLoader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    change_sets_evaluate_outputs()
    templates_read_by_libyaml()
    app = cached_dispatch(DomainDispatcherApplication(create_backend_app))
    run_simple(
        args.host,
        args.port,
        Serialized(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
