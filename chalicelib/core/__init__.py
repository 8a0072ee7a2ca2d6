"""The pure core: parsing, rules, decisions, stored documents, notifications and rendering.

No boto3, botocore or chalice here (a test enforces it); every function that depends on time
takes ``now``.
"""
