"""The local runtime: moto on loopback plays AWS, a poller plays Lambda's SQS event source mapping.

Nothing here ships to Lambda. Everything talks to a moto server on 127.0.0.1 with fake credentials,
so the whole flow runs on a laptop with no AWS account and no chance of reaching AWS.
"""
