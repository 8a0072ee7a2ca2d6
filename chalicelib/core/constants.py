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

# Event sources.
SIGNIN_SOURCE: Final = "signin.amazonaws.com"

# Event names (docs/events.md lists each with its source, eventType and where who/where/outcome is).
CONSOLE_LOGIN: Final = "ConsoleLogin"
CREDENTIAL_CHALLENGE: Final = "CredentialChallenge"
CREDENTIAL_VERIFICATION: Final = "CredentialVerification"
USER_AUTHENTICATION: Final = "UserAuthentication"
# `aws login` (AWS CLI 2.32.0, November 2025): the browser step that authorizes the CLI after the
# user is authenticated, and the CLI's token exchange. signin.amazonaws.com, eventType AwsApiCall,
# readOnly true; the outcome is additionalEventData.success ("true"). CreateOAuth2Token is also
# the refresh the CLI repeats every 15 minutes, so only AuthorizeOAuth2Access is a sign-in.
# https://aws.amazon.com/blogs/security/simplified-developer-access-to-aws-with-aws-login/
AUTHORIZE_OAUTH2_ACCESS: Final = "AuthorizeOAuth2Access"
CREATE_OAUTH2_TOKEN: Final = "CreateOAuth2Token"  # noqa: S105 - an event name
SIGNIN_OAUTH2_EVENTS: Final = frozenset({AUTHORIZE_OAUTH2_ACCESS, CREATE_OAUTH2_TOKEN})

# IAM MFA devices (iam.amazonaws.com, AwsApiCall, logged in us-east-1).
IAM_SOURCE: Final = "iam.amazonaws.com"
CREATE_VIRTUAL_MFA_DEVICE: Final = "CreateVirtualMFADevice"
ENABLE_MFA_DEVICE: Final = "EnableMFADevice"
RESYNC_MFA_DEVICE: Final = "ResyncMFADevice"
DEACTIVATE_MFA_DEVICE: Final = "DeactivateMFADevice"
DELETE_VIRTUAL_MFA_DEVICE: Final = "DeleteVirtualMFADevice"
#: A device registered, enabled or resynchronised: the takeover step after a failed MFA.
IAM_MFA_DEVICE_ADDED: Final = frozenset(
    {CREATE_VIRTUAL_MFA_DEVICE, ENABLE_MFA_DEVICE, RESYNC_MFA_DEVICE}
)
IAM_MFA_DEVICE_REMOVED: Final = frozenset({DEACTIVATE_MFA_DEVICE, DELETE_VIRTUAL_MFA_DEVICE})

# IAM console passwords: an administrator creates or resets a user's (requestParameters.userName),
# a user changes their own (ChangePassword: requestParameters is null, the caller is the user).
CREATE_LOGIN_PROFILE: Final = "CreateLoginProfile"
UPDATE_LOGIN_PROFILE: Final = "UpdateLoginProfile"
CHANGE_PASSWORD: Final = "ChangePassword"  # noqa: S105 - an event name
IAM_PASSWORD_CHANGED: Final = frozenset(
    {CREATE_LOGIN_PROFILE, UPDATE_LOGIN_PROFILE, CHANGE_PASSWORD}
)

# IAM Identity Center MFA devices: console APIs of the Identity Store, event source
# sso-directory.amazonaws.com (AWS lists identitystore.amazonaws.com for the same event group).
# https://aws.amazon.com/blogs/security/modifications-to-aws-cloudtrail-event-data-of-iam-identity-center/
SSO_DIRECTORY_SOURCE: Final = "sso-directory.amazonaws.com"
IDENTITY_STORE_SOURCE: Final = "identitystore.amazonaws.com"
DELETE_MFA_DEVICE_FOR_USER: Final = "DeleteMfaDeviceForUser"
UPDATE_MFA_DEVICE_FOR_USER: Final = "UpdateMfaDeviceForUser"
#: A device registered (the Start* calls before these register nothing yet).
IDENTITY_CENTER_MFA_DEVICE_ADDED: Final = frozenset(
    {"CompleteVirtualMfaDeviceRegistration", "CompleteWebAuthnDeviceRegistration"}
)
#: Identity Center device changes that follow a failed MFA step in a takeover chain: registered,
#: updated, or removed (the factor that could not be passed, taken away).
IDENTITY_CENTER_TAKEOVER_STEPS: Final = IDENTITY_CENTER_MFA_DEVICE_ADDED | frozenset(
    {UPDATE_MFA_DEVICE_FOR_USER, DELETE_MFA_DEVICE_FOR_USER}
)
IDENTITY_CENTER_DEVICE_SOURCES: Final = frozenset({SSO_DIRECTORY_SOURCE, IDENTITY_STORE_SOURCE})

# EventBridge rule states. A rule in the default state ENABLED receives no read-only management
# event that CloudTrail delivers (readOnly true: `aws login`'s AuthorizeOAuth2Access and
# CreateOAuth2Token); ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS receives them too (default and
# custom buses; settable through the API, the CLI and CloudFormation).
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail-management.html
RULE_STATE_ENABLED: Final = "ENABLED"
RULE_STATE_WITH_READ_ONLY: Final = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"

# userIdentity.type values.
IDENTITY_IAM_USER: Final = "IAMUser"
IDENTITY_ROOT: Final = "Root"
IDENTITY_ASSUMED_ROLE: Final = "AssumedRole"
IDENTITY_FEDERATED_USER: Final = "FederatedUser"
IDENTITY_CENTER_USER: Final = "IdentityCenterUser"
IDENTITY_UNKNOWN: Final = "Unknown"

# What a failed IAM-user sign-in with an unknown user name reports as userName.
HIDDEN_USER_NAME: Final = "HIDDEN_DUE_TO_SECURITY_REASONS"

# A console sign-in denied by an AWS Sign-In resource-based policy or a resource control policy
# (2026) is a ConsoleLogin Failure with errorCode AccessDenied and errorMessage "Authorization
# denied because of a resource-based policy" / "... a resource control policy". A denial after
# authentication follows a correct password (and MFA): it is never a failed MFA step.
# https://docs.aws.amazon.com/signin/latest/userguide/console-access-control.html
ERROR_ACCESS_DENIED: Final = "AccessDenied"
POLICY_DENIAL_PREFIX: Final = "Authorization denied because of "

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
#: The app's own scheduled heartbeat function (app.py): the one that publishes the canary, so the
#: only one whose role may (route (b); mfawatch/deploy/templates/merge.py).
PIPELINE_HEARTBEAT_HANDLER: Final = "heartbeat"
HEARTBEAT_PATTERN: Final[dict[str, object]] = {
    "source": ["aws.events"],
    "detail-type": ["Scheduled Event"],
    "resources": [{"wildcard": f"arn:*:events:*:*:rule/{HEARTBEAT_RULE_NAME}"}],
}
