"""Exceptions raised by Pigeonhole; each names what went wrong so the log line is actionable."""


class PigeonholeError(Exception):
    """Base class."""


class ConfigurationError(PigeonholeError):
    """The environment does not describe a runnable function."""


class ModelIntegrityError(PigeonholeError):
    """The model file does not match its manifest (tampered, truncated or mismatched package)."""


class ManifestError(PigeonholeError):
    """The manifest is missing, unreadable or not of a supported schema."""


class PublishError(PigeonholeError):
    """A downstream write failed; the record must be retried by SQS."""
