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
together a quarter of the server's CPU time in the tests. Its response serializer reads dict
results (DynamoDB's items) without asking its alias providers every time
(:func:`dict_results_read_directly`); DynamoDB parses each distinct UpdateExpression once
(:func:`update_expressions_parsed_once`) and walks its syntax trees without rebuilding a map at
every node (:func:`update_expressions_traversed_faster`); SNS signs with one key
(:func:`one_sns_signing_key`); connections stay open between requests
(:class:`KeepAliveRequestHandler`), as AWS's do. The responses are the same; each request costs
the server and its client less CPU. Its CloudFormation reads templates with libyaml
(:func:`templates_read_by_libyaml`).

Usage: python tests/atomic_moto_server.py -p PORT [-H 127.0.0.1]
"""

from __future__ import annotations

import argparse
import functools
import io
import selectors
import threading
from collections.abc import Callable, Iterable
from typing import Any

import werkzeug.serving
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
        # The whole request body is read before the application runs, whatever part of it the
        # application reads: the next request on a kept-alive connection starts after it.
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        with self._lock:
            return list(self._app(environ, start_response))


class KeepAliveRequestHandler(MotoRequestHandler):  # type: ignore[misc]  # moto is typed Any here
    """moto's request handler keeping HTTP/1.1 connections open, as AWS endpoints do.

    Werkzeug's development server closes every connection after one response, because after
    each response it discards whatever the client sent that the application did not read (an
    unread body), which on a kept-alive connection would be the next request. Here nothing is
    left to read (:class:`Serialized` reads every body), so that step is turned off
    (:class:`_NoLeftovers`) and the connection stays open. Before, every API call paid a TCP
    connection, a new server thread and werkzeug's 10 ms wait for leftovers."""

    protocol_version = "HTTP/1.1"
    # A response's head and body are two writes: with Nagle's algorithm the body waits for
    # the client's delayed ACK of the head (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)


class _NoLeftovers:
    """Stands in for the ``selectors`` module in ``werkzeug.serving``, whose only use of it is
    the wait for leftovers of a request after its response (werkzeug 3.1): nothing is ever
    left (:class:`Serialized`), so the wait finds nothing at once."""

    EVENT_READ = selectors.EVENT_READ

    class DefaultSelector:
        def register(self, *_: Any) -> None:
            pass

        def select(self, timeout: float | None = None) -> list[Any]:
            return []

        def close(self) -> None:
            pass


def cached_dispatch(app: DomainDispatcherApplication) -> DomainDispatcherApplication:
    """``app`` finding the backend of each host once, and moto's response classes listing their
    action methods once: the answers depend on the host or the class alone (moto's package
    folders, URL patterns and classes do not change while it runs; moto only tests the list of
    methods for membership)."""
    from moto.core import responses

    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    app.get_backend_for_host = functools.cache(app.get_backend_for_host)
    return app


def dict_results_read_directly() -> None:
    """moto's response serializer asks six alias providers, for every member of every
    structure it writes, which keys of the result may hold the member's value, and builds a
    context object and the member's path for each (moto 5.2.5, ``moto/core/serialize.py``):
    over a third of the server's CPU time in the DynamoDB tests, whose results are dicts of
    items (every attribute value is a structure of ten members). For a ``dict`` the answer
    depends on the member's shape and name alone (the providers read the shape, its parent
    structure, and the object's class, ``dict``, which has no ``Meta``), so it is found once
    per member shape, and the value read with the same lookup as moto's (``get_value``). Other
    objects, and pickers with response transformers (SNS's), take moto's path."""
    from moto.core import serialize
    from moto.core.utils import MISSING
    from moto.core.utils import get_value as value_at

    get_value = serialize.ResponseSerializer.get_value
    found: dict[tuple[int, str], tuple[Any, list[str]]] = {}

    def keys_of(picker: Any, value: Any, key: str, shape: Any) -> list[str]:
        hit = found.get((id(shape), key))
        if hit is None or hit[0] is not shape:  # the cached shape keeps its id
            context = serialize.AttributePickerContext(obj=value, key=key, shape=shape)
            hit = found[(id(shape), key)] = (shape, list(picker.get_possible_keys(context)))
        return hit[1]

    def get_dict_value(self: Any, value: Any, key: str, shape: Any) -> Any:
        picker = self._value_picker
        if (
            type(value) is not dict
            or type(picker) is not serialize.XFormedAttributePicker
            or picker.response_transformers
            or picker.alias_providers is not serialize.DEFAULT_ALIAS_PROVIDERS
        ):
            return get_value(self, value, key, shape)
        for possible_key in keys_of(picker, value, key, shape):
            # moto's get_value reads a dotted key as a path, any other with [] (KeyError: none)
            found_value = (
                value_at(value, possible_key, MISSING)
                if "." in possible_key
                else value.get(possible_key, MISSING)
            )
            if found_value is not MISSING:
                return found_value
        return None

    # A patch of moto's serializer, by design (see above).
    serialize.ResponseSerializer.get_value = get_dict_value


def update_expressions_traversed_faster() -> None:
    """moto validates an UpdateExpression with ten traversers of its syntax tree, and each
    traverser rebuilds its map of node classes to handlers twice for every node it visits
    (moto 5.2.5, ``DepthFirstTraverser`` in ``moto/dynamodb/parsing/ast_nodes.py``). The map
    is a constant of the traverser (node classes to its bound methods), so each traverser
    builds it once: the validation of a six-clause expression took 1.3 ms of CPU, now 1.05."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    def processing_map(self: Any) -> dict[type, Callable[[Any], Any]]:
        built: dict[type, Callable[[Any], Any]] | None = self.__dict__.get("_map_built_once")
        if built is None:
            built = self.__dict__["_map_built_once"] = self._processing_map()
        return built

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        nodes: tuple[type, ...] | None = self.__dict__.get("_nodes_built_once")
        if nodes is None:
            nodes = self.__dict__["_nodes_built_once"] = tuple(processing_map(self))
        return nodes

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing_map(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    # A patch of moto's traverser, by design (see above).
    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed
    DepthFirstTraverser.process = process


def update_expressions_parsed_once() -> None:
    """moto parses an UpdateItem's UpdateExpression twice per request (moto 5.2.5: the
    response class to check the placeholders, the backend to validate), into a syntax tree
    that both only read: the validator works on a deep copy. The tree depends on the string
    alone, so each distinct expression is parsed once; an invalid one raises every time."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)

    def make(cls: Any, expression: str) -> Any:
        return parse(expression)

    # A patch of moto's parser, by design (see above).
    UpdateExpressionParser.make = classmethod(make)


def one_sns_signing_key() -> None:
    """SNS signs every notification it delivers; moto 5.2.5 generates a 2048-bit RSA key for
    each subscription, 50 to 120 ms of CPU, on its first delivery. SNS signs with one key per
    region (its signing certificate), so this server generates one key, once, and every
    subscription signs with it."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from moto.sns.models import Subscription

    @functools.cache
    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def private_key(self: Any) -> rsa.RSAPrivateKey:
        return key()

    # A patch of moto's SNS model, by design (see above).
    Subscription.private_key = private_key


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
    dict_results_read_directly()
    update_expressions_traversed_faster()
    update_expressions_parsed_once()
    one_sns_signing_key()
    werkzeug.serving.selectors = _NoLeftovers  # type: ignore[attr-defined,assignment]
    app = cached_dispatch(DomainDispatcherApplication(create_backend_app))
    run_simple(
        args.host,
        args.port,
        Serialized(app),
        threaded=True,
        request_handler=KeepAliveRequestHandler,
    )


if __name__ == "__main__":
    main()
