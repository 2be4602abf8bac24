"""Input limits: an item over one is quarantined with the limit named (see docs/safety.md).

Every limit is an ``input:`` key in the pipeline YAML, so a user can raise or lower it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Width x height above which an image is a decompression bomb (2x Pillow's warning threshold,
#: the size at which Pillow itself refuses to open an image).
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
#: Largest single item file (an image, a sidecar, an archive member), in bytes.
DEFAULT_MAX_FILE_BYTES = 256 * 2**20
#: Longest caption or document, in characters.
DEFAULT_MAX_TEXT_CHARS = 1_000_000
#: Longest line of a JSONL manifest or field of a CSV manifest, in bytes.
DEFAULT_MAX_LINE_BYTES = 16 * 2**20
#: Raw bytes of a quarantined item are kept up to this size (larger ones: the reason only).
DEFAULT_QUARANTINE_MAX_BYTES = 2**20


@dataclass(frozen=True)
class Limits:
    """The limits of one ingest (from :class:`~curate.config.InputConfig`)."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    quarantine_max_bytes: int = DEFAULT_QUARANTINE_MAX_BYTES

    @classmethod
    def of(cls, cfg) -> "Limits":
        """The limits of an input config (any object with the ``max_*`` attributes)."""
        return cls(**{name: getattr(cfg, name, default) for name, default in cls().__dict__.items()})
