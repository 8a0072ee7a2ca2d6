"""The one builder of synthetic CloudTrail records: the demo scenario, the benchmarks and the
tests build their events here.

Records follow the real formats (AWS documentation examples and redacted real events under
tests/events/): a failed IAM-user sign-in carries no ``arn``; Identity Center steps after July
2025 name nobody in ``userIdentity``. Ids come from :class:`Ids`, so output is reproducible
byte for byte (``scenarios/generate_demo.py`` relies on it).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any


def iso(moment: datetime) -> str:
    """CloudTrail's ``eventTime`` format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Ids:
    """Deterministic UUIDs, so the scenario is byte-for-byte reproducible."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return str(
            uuid.UUID(
                bytes=hashlib.sha256(f"{self.seed}-{self.n}".encode()).digest()[:16], version=4
            )
        )


class CloudTrail:
    """Builders of CloudTrail records and identities; ``new_id`` numbers the event ids."""

    def __init__(self, new_id: Ids) -> None:
        self.new_id = new_id

    def iam_user(self, account: str, name: str, arn: bool = True) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "type": "IAMUser",
            "principalId": "AIDA" + hashlib.sha256(name.encode()).hexdigest()[:17].upper(),
            "accountId": account,
            "accessKeyId": "",
            "userName": name,
        }
        if arn:  # failed IAM-user sign-ins carry no arn
            identity["arn"] = f"arn:aws:iam::{account}:user/{name}"
        return identity

    def root(self, account: str) -> dict[str, Any]:
        return {
            "type": "Root",
            "principalId": account,
            "arn": f"arn:aws:iam::{account}:root",
            "accountId": account,
            "accessKeyId": "",
        }

    def console_login(
        self,
        when: datetime,
        account: str,
        identity: dict[str, Any],
        *,
        outcome: str,
        mfa_used: str,
        ip: str,
        ua: str,
        region: str = "us-east-1",
        mfa_identifier: str = "",
        error: str = "Failed authentication",
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true",
            "MobileVersion": "No",
        }
        if mfa_identifier:
            extra["MFAIdentifier"] = mfa_identifier
        extra["MFAUsed"] = mfa_used
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": iso(when),
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": ua,
        }
        if outcome == "Failure":
            record["errorMessage"] = error
        record.update(
            {
                "requestParameters": None,
                "responseElements": {"ConsoleLogin": outcome},
                "additionalEventData": extra,
                **self._console_sign_in(account),
                "tlsDetails": {
                    "tlsVersion": "TLSv1.3",
                    "cipherSuite": "TLS_AES_128_GCM_SHA256",
                    "clientProvidedHostHeader": f"{region}.signin.aws.amazon.com",
                },
            }
        )
        return record

    def check_mfa(
        self, when: datetime, account: str, name: str, *, ip: str, ua: str, region: str
    ) -> dict[str, Any]:
        return {
            "eventVersion": "1.09",
            "userIdentity": self.iam_user(account, name, arn=False),
            "eventTime": iso(when),
            "eventSource": "signin.amazonaws.com",
            "eventName": "CheckMfa",
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": ua,
            "requestParameters": None,
            "responseElements": {"CheckMfa": "Success"},
            "additionalEventData": {"MfaType": "Virtual MFA"},
            **self._console_sign_in(account),
        }

    def _console_sign_in(self, account: str) -> dict[str, Any]:
        """The fields every console sign-in record ends with, a new event id among them."""
        return {
            "eventID": self.new_id(),
            "readOnly": False,
            "eventType": "AwsConsoleSignIn",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }

    def idc_event(
        self,
        when: datetime,
        name: str,
        *,
        credential_type: str,
        outcome: str,
        workflow: str,
        ip: str,
        identity: dict[str, Any],
        user_name: str = "",
        account: str,
        ua: str,
        region: str = "eu-west-1",
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"AuthWorkflowID": workflow, "CredentialType": credential_type}
        if user_name:
            extra["UserName"] = user_name
        return {
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": iso(when),
            "eventSource": "signin.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": ua,
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": extra,
            "requestID": self.new_id(),
            "eventID": self.new_id(),
            "readOnly": False,
            "eventType": "AwsServiceEvent",
            "managementEvent": True,
            "eventCategory": "Management",
            "recipientAccountId": account,
            "serviceEventDetails": {name: outcome},
        }

    def unauthenticated(self, account: str) -> dict[str, Any]:
        return {"type": "Unknown", "arn": "", "accountId": account, "accessKeyId": ""}

    def idc_user(self, account: str, user_id: str) -> dict[str, Any]:
        return {
            "type": "IdentityCenterUser",
            "arn": "",
            "accountId": account,
            "accessKeyId": "",
            "onBehalfOf": {
                "userId": user_id,
                "identityStoreArn": f"arn:aws:identitystore::{account}:identitystore/d-93670f1e2b",
            },
            "credentialId": "5b3f1c0e-7a2d-4e9f-8c6b-1a2b3c4d5e6f",
        }

    def api_call(
        self,
        when: datetime,
        account: str,
        *,
        region: str,
        source: str,
        name: str,
        identity: dict[str, Any],
        ip: str,
        ua: str,
        params: dict[str, Any] | None,
        error: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "eventVersion": "1.10",
            "userIdentity": identity,
            "eventTime": iso(when),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": ua,
        }
        if error:
            record["errorCode"], record["errorMessage"] = error
        record.update(
            {
                "requestParameters": params,
                "responseElements": None,
                "requestID": self.new_id(),
                "eventID": self.new_id(),
                "readOnly": name.startswith(("Get", "Describe", "List")),
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": account,
                "eventCategory": "Management",
            }
        )
        return record

    def console_session(self, account: str, name: str, at_time: datetime) -> dict[str, Any]:
        identity = self.iam_user(account, name)
        identity["accessKeyId"] = "ASIA" + hashlib.sha256(name.encode()).hexdigest()[:16].upper()
        identity["sessionContext"] = {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": iso(at_time), "mfaAuthenticated": "true"},
        }
        identity["invokedBy"] = "signin.amazonaws.com"
        return identity

    def role_session(
        self,
        account: str,
        role: str,
        session: str,
        created: str = "2026-11-02T00:00:00Z",
        mfa: bool = False,
    ) -> dict[str, Any]:
        role_id = "AROA" + hashlib.sha256(role.encode()).hexdigest()[:17].upper()
        return {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "accountId": account,
            "accessKeyId": "ASIA" + hashlib.sha256(session.encode()).hexdigest()[:16].upper(),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": f"arn:aws:iam::{account}:role/{role}",
                    "accountId": account,
                    "userName": role,
                },
                "attributes": {
                    "creationDate": created,
                    "mfaAuthenticated": "true" if mfa else "false",
                },
            },
        }


# --- Lambda's on-failure records and the SQS event that carries them ----------------------------


def on_failure_record(
    event: dict[str, Any],
    function_arn: str,
    *,
    condition: str = "RetriesExhausted",
    attempts: int = 3,
    error: tuple[str, str] | None = ("StateStoreError", "DynamoDB UpdateItem failed"),
    request_id: str = "e4b46cbf-b738-4a3c-8880-a18cdf61200e",
    timestamp: str = "2026-11-02T09:04:05.568Z",
) -> dict[str, Any]:
    """The invocation record Lambda sends to an on-failure destination, in the documented format
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).
    ``condition="EventAgeExceeded"`` records carry no response (the function may not have run)."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
    }
    if error is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        }
        record["responsePayload"] = {
            "errorType": error[0],
            "errorMessage": error[1],
            "requestId": request_id,
            "stackTrace": [],
        }
    return record


def sqs_event_record(
    body: str,
    queue_arn: str,
    message_id: str,
    receive_count: int = 1,
    receipt_handle: str = "",
) -> dict[str, Any]:
    """One record of the event an SQS event source mapping passes to Lambda
    (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html, "Example standard queue
    message event"); the harness builds it from a received message, as the mapping does."""
    region = queue_arn.split(":")[3]
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or f"receipt-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1793610245568",
            "SenderId": "AROAEXAMPLE:mfawatch-dev-on_iam_console_mfa_failure",
            "ApproximateFirstReceiveTimestamp": "1793610245600",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
