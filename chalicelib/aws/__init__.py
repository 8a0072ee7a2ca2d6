"""The AWS edges: one small class per service (DynamoDB, SNS, SQS), its boto3 client injected,
``ClientError`` translated into :mod:`chalicelib.core.errors`.
"""
