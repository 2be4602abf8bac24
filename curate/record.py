"""The record: one row of the ingested dataset (see docs/architecture.md)."""

from __future__ import annotations

import hashlib

import pyarrow as pa

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("image", pa.binary()),
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("meta", pa.string()),
    ]
)
RECORD_COLUMNS = tuple(RECORD_SCHEMA.names)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("image", pa.binary()),
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
    ]
)

# Columns every stage shard carries besides its own.
FLAG_COLUMNS = ("flag", "action", "detail")
ACTIONS = ("keep", "review", "drop")


def content_id(source: str, image: bytes | None, text: str | None, label: str | None) -> str:
    """Stable content id: the same input gives the same id on any machine, in any order.

    A hash of the source key and the content (image bytes, text, label), 128 bits as hex.
    """
    parts = (source.encode("utf-8"), image or b"", (text or "").encode("utf-8"), (label or "").encode("utf-8"))
    header = b"".join(len(p).to_bytes(8, "little") for p in parts)  # lengths first: no ambiguity between parts
    return hashlib.blake2b(header + b"".join(parts), digest_size=16).hexdigest()
