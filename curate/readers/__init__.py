"""Input readers, one per ``input.format``."""

from __future__ import annotations

from curate.errors import InputError
from curate.readers.base import RawItem, Reader, ReadTask, build_shard
from curate.readers.coco import CocoReader
from curate.readers.files import CaptionsReader, ImageFolderReader
from curate.readers.hf import HfReader
from curate.readers.manifest import CsvReader, JsonlReader, ParquetReader
from curate.readers.webdataset import WebDatasetReader

READERS: dict[str, type[Reader]] = {
    r.format: r
    for r in (ImageFolderReader, CaptionsReader, CsvReader, JsonlReader, ParquetReader, WebDatasetReader, CocoReader, HfReader)
}

__all__ = ["READERS", "RawItem", "ReadTask", "Reader", "build_shard", "make_reader"]


def make_reader(cfg) -> Reader:
    """The reader for ``cfg.format`` (an :class:`~curate.config.InputConfig`)."""
    cls = READERS.get(cfg.format)
    if cls is None:
        raise InputError(f"input.format: unknown format {cfg.format!r}; allowed: {', '.join(READERS)}")
    return cls(cfg)
