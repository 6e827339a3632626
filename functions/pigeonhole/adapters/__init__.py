"""Thin wrappers over AWS APIs. Each takes an injected boto3 client and never builds one itself."""
