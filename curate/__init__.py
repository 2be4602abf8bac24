"""curate: turn raw, messy datasets into small, high-quality training sets."""

__version__ = "0.1.0"
