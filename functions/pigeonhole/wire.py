"""What the classifier writes to its queues and bus: strict JSON that always fits its destination.

Why a module of its own: every message embeds producer content (the review message the producer's
event, the quarantine message the raw body), and producer content is unbounded in the ways that
break writers: `json.dumps` re-escapes non-ASCII as ``\\uXXXX`` (6 bytes a character, so a body that
fit the ingest queue may not fit the quarantine queue), Python writes ``NaN``/``Infinity`` that
JavaScript, Go and Jackson reject, and a lone surrogate (legal in a JSON ``\\ud800`` escape) cannot be
encoded as UTF-8 at all. So: UTF-8 text (``ensure_ascii=False``, measured in bytes), non-finite
numbers refused, the characters SQS refuses written as escapes, and embedded content capped to a
byte budget with the sha256 and length of the whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

SQS_MAX_MESSAGE_BYTES = 256 * 1024  # SendMessage / SendMessageBatch: one message and the whole request
EVENTS_MAX_REQUEST_BYTES = 256 * 1024  # PutEvents: the whole request (sum of its entries' sizes)
# What a capped embed of a body keeps: enough to read and fix most events, far below the queue's limit.
DEFAULT_EMBED_BYTES = 64 * 1024
# Characters valid in JSON text but refused by SQS (and by UTF-8 encoders): lone surrogates and the
# two non-characters U+FFFE/U+FFFF. Outside a string JSON never has them, so escaping them is safe.
_UNSENDABLE = re.compile("[\ud800-\udfff\ufffe\uffff]")


class NotRepresentableError(ValueError):
    """The value cannot be written as strict JSON (NaN, infinity, an integer past Python's digit limit)."""


def strict_dumps(value: Any) -> str:
    """Compact strict JSON, UTF-8 friendly: raises :class:`NotRepresentableError` instead of writing ``NaN``."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise NotRepresentableError(f"not representable as strict JSON: {type(exc).__name__}") from None
    return _UNSENDABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def utf8_len(text: str) -> int:
    """Bytes on the wire (what SQS and EventBridge limits count)."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def digest(text: str) -> tuple[str, int]:
    """sha256 (hex) and length in bytes of a body, as received."""
    data = text.encode("utf-8", errors="surrogatepass")
    return hashlib.sha256(data).hexdigest(), len(data)


def prefix(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding is at most ``max_bytes`` (never a split character)."""
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def fit(
    build: Callable[[str, bool], str], embed: str, budget: int, start: int = DEFAULT_EMBED_BYTES
) -> tuple[str, bool]:
    """``build(embedded_text, truncated)`` → strict JSON; shrink the embedded prefix until the message fits.
    Returns the message and whether the embed was cut.

    Halving converges in at most ~17 steps from 64 KiB; with an empty embed the message is a few hundred
    bytes of ids and reasons, so it always fits a 256 KiB queue.
    """
    limit = start
    while True:
        part = prefix(embed, limit)
        cut = part != embed
        text = build(part, cut)
        if utf8_len(text) <= budget or limit == 0:
            return text, cut
        limit //= 2
