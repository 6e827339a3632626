"""Keep the full body of a quarantined event in S3 when the quarantine message can carry only a prefix.

The object key is the body's sha256, so a redelivered record overwrites the same object (idempotent)
and identical bodies share one object. Encryption and expiry are the bucket's (the stack gives it a
KMS key and a lifecycle rule); nothing here decides either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "quarantine/"


class BodyArchive:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    @staticmethod
    def key_for(sha256: str) -> str:
        return f"{PREFIX}{sha256[:2]}/{sha256}"

    def put(self, sha256: str, body: bytes) -> str | None:
        """Store ``body`` under its digest; return an error for SQS to retry the record, or None."""
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.key_for(sha256),
                Body=body,
                ContentType="application/octet-stream",
                ChecksumAlgorithm="SHA256",
            )
        except (ClientError, BotoCoreError) as exc:
            return f"PutObject failed: {type(exc).__name__}: {_code(exc)}"
        return None


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__
