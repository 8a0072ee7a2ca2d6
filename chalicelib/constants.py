"""AWS strings in one place: event sources, detail-types, event names.

References:
- CloudTrail event delivery to EventBridge, detail-type per CloudTrail ``eventType``:
  https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-cloudtrail.html ("AWS API Call via
  CloudTrail", "AWS Console Sign In via CloudTrail", "AWS Service Event via CloudTrail", ...).
- Console sign-in events: https://docs.aws.amazon.com/awscloudtrail/latest/userguide/
  cloudtrail-event-reference-aws-console-sign-in-events.html
- IAM Identity Center sign-in events (CredentialChallenge / CredentialVerification, the July 2025
  format change that removed ``userName`` for unauthenticated steps):
  https://docs.aws.amazon.com/singlesignon/latest/userguide/understanding-sign-in-events.html
"""

from __future__ import annotations

from typing import Final

# CloudTrail eventType -> EventBridge detail-type. Real sign-in events say "Sign In"; one AWS guide
# spells it "Signin", so our rules pattern on source/eventSource/eventName, never on detail-type.
DETAIL_TYPE_BY_EVENT_TYPE: Final[dict[str, str]] = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
    "AwsConsoleAction": "AWS Console Action via CloudTrail",
    "AwsCloudTrailInsight": "AWS Insight via CloudTrail",
}
DEFAULT_DETAIL_TYPE: Final = "AWS API Call via CloudTrail"

# Event names.
CREDENTIAL_CHALLENGE: Final = "CredentialChallenge"
CREDENTIAL_VERIFICATION: Final = "CredentialVerification"
USER_AUTHENTICATION: Final = "UserAuthentication"
DEACTIVATE_MFA_DEVICE: Final = "DeactivateMFADevice"
DELETE_VIRTUAL_MFA_DEVICE: Final = "DeleteVirtualMFADevice"

# userIdentity.type values.
IDENTITY_IAM_USER: Final = "IAMUser"
IDENTITY_ROOT: Final = "Root"
IDENTITY_ASSUMED_ROLE: Final = "AssumedRole"
IDENTITY_FEDERATED_USER: Final = "FederatedUser"
IDENTITY_CENTER_USER: Final = "IdentityCenterUser"
IDENTITY_UNKNOWN: Final = "Unknown"

# What a failed IAM-user sign-in with an unknown user name reports as userName.
HIDDEN_USER_NAME: Final = "HIDDEN_DUE_TO_SECURITY_REASONS"

# SNS limits: https://docs.aws.amazon.com/sns/latest/api/API_Publish.html
# "Subject ... must be ASCII text that begins with a letter, number, or punctuation mark; must not
# include line breaks or control characters; and must be less than 100 characters long."
# Less than 100: at most 99.
SNS_SUBJECT_MAX: Final = 99

# The heartbeat: every member account and Region runs a scheduled EventBridge rule named
# HEARTBEAT_RULE_NAME whose target is the central bus (the same path sign-in events take; AWS
# rejects aws.* sources in PutEvents, so a scheduled rule is how a real event crosses). The
# central app matches those "Scheduled Event"s and expects one per account x Region within
# HEARTBEAT_OVERDUE_SECONDS.
HEARTBEAT_RULE_NAME: Final = "mfawatch-heartbeat"
# The one place the period is written: member rules, the app's own schedule (app.py) and the
# heartbeat alarm's Period in deploy/resources.yaml (a test compares it) all follow it.
HEARTBEAT_INTERVAL_MINUTES: Final = 15
HEARTBEAT_SCHEDULE: Final = f"rate({HEARTBEAT_INTERVAL_MINUTES} minutes)"
HEARTBEAT_INTERVAL_SECONDS: Final = HEARTBEAT_INTERVAL_MINUTES * 60
HEARTBEAT_OVERDUE_SECONDS: Final = 2 * HEARTBEAT_INTERVAL_SECONDS + 5 * 60
HEARTBEAT_PATTERN: Final[dict[str, object]] = {
    "source": ["aws.events"],
    "detail-type": ["Scheduled Event"],
    "resources": [{"wildcard": f"arn:*:events:*:*:rule/{HEARTBEAT_RULE_NAME}"}],
}
