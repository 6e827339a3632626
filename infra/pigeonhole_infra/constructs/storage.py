"""Buckets from `pigeonhole.topology`: today one, the full bodies of quarantined events.

A quarantine message embeds at most a prefix of a large body (with its sha256 and length); the
classifier then keeps the whole body here under its sha256, so nothing a producer sent is lost.
Private, TLS-only, encrypted with the stack's data key (with an S3 bucket key: one KMS request per
bucket key instead of per object) and expired by a lifecycle rule after the quarantine messages
that point at its objects are gone.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pigeonhole.topology import BucketSpec

# Where the classifier's BodyArchive writes (pigeonhole.adapters.s3.PREFIX): the only writable keys.
QUARANTINE_OBJECTS = "quarantine/*"


def build_bucket(
    scope: Construct, construct_id: str, *, spec: BucketSpec, key: kms.IKey, destroy_on_teardown: bool
) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        bucket_name=spec.physical_name(cdk.Aws.ACCOUNT_ID, cdk.Aws.REGION),
        encryption=s3.BucketEncryption.KMS if spec.kms else s3.BucketEncryption.S3_MANAGED,
        encryption_key=key if spec.kms else None,
        bucket_key_enabled=spec.kms,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire",
                expiration=cdk.Duration.days(spec.expire_after_days),
                abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
            )
        ],
        # Held data: kept on stack deletion unless the config says this is a throwaway deployment
        # (then it must be emptied first: no auto-delete custom resource, so no extra function).
        removal_policy=cdk.RemovalPolicy.DESTROY if destroy_on_teardown else cdk.RemovalPolicy.RETAIN,
    )
