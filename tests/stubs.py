"""botocore's Stubber on an offline client: the wire-level fake the unit and functional tiers
use instead of patching our modules (the client makes no request; the stubber checks each call's
parameters and answers it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.stub import Stubber


def offline_client(service: str) -> Any:
    """A boto3 client with dummy credentials in us-east-1 (it never reaches AWS under Stubber)."""
    return boto3.client(  # type: ignore[call-overload]  # boto3-stubs take literal names
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


@contextmanager
def stubbed(service: str) -> Iterator[tuple[Any, Stubber]]:
    """(client, stubber), activated; on exit every queued response must have been used."""
    client = offline_client(service)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()
