"""The one filesystem layer: local paths and object storage (``s3://``, ``gs://``, any fsspec URL).

A location is a :class:`pathlib.Path` for local files and a :class:`RemotePath` for a URL. Both
answer the same questions (``/``, ``name``, ``parent``, ``exists()``, ``is_dir()``, ``glob()``,
``iterdir()``, ``read_bytes()``), so the run directory, readers and exporters handle either; Parquet
goes through :func:`read_table`, :func:`write_table` and friends, which hand pyarrow the right
filesystem.

Filesystems come from pyarrow (``S3FileSystem``, ``GcsFileSystem``), configured the usual way:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_REGION`` / ``AWS_ENDPOINT_URL`` (for MinIO,
Ceph, R2 ...) or an instance profile for S3; application default credentials for GCS. Other schemes
(``az://``, ``abfs://``, ``hf://`` ...) go through fsspec when it and the scheme's package are installed.

**Completing a write.** Locally a file is written to a temporary name and renamed (``os.replace``),
so a file that exists is whole. Object stores have no rename: an object is written under a
temporary key (``.<name>.<random>.tmp`` beside it), then copied server-side to its final key and the
temporary key deleted. The final key appearing is the completion marker: S3 and GCS make an object
visible only once its upload (or copy) has completed, so a reader never sees a partial shard, and a
writer that dies leaves at most a temporary key, which listings skip (its name starts with ``.``)
and :func:`rmtree` of its directory removes. The resume rule "a shard that exists is done" holds on
both.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from curate.errors import CurateError

_FILESYSTEMS: dict[tuple[str, str], pafs.FileSystem] = {}
_PYARROW_SCHEMES = ("s3", "gs", "gcs")


def is_url(value: Any) -> bool:
    """True for ``scheme://...`` strings (and :class:`RemotePath`); Windows drive letters are paths."""
    if isinstance(value, RemotePath):
        return True
    if not isinstance(value, str):
        return False
    scheme, sep, _ = value.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum() and scheme != "file"


def _filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    key = (scheme, bucket)
    fs = _FILESYSTEMS.get(key)
    if fs is None:
        if scheme in _PYARROW_SCHEMES:
            try:
                fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
                raise CurateError(f"{scheme}://{bucket}: cannot open this object store ({exc}); check the "
                                  "credentials and endpoint (AWS_* / GOOGLE_* environment variables)") from None
        else:
            try:
                import fsspec
                from pyarrow.fs import FSSpecHandler, PyFileSystem

                fs = PyFileSystem(FSSpecHandler(fsspec.filesystem(scheme)))
            except (ImportError, ValueError) as exc:
                raise CurateError(f"{scheme}://: no filesystem for this scheme ({exc}); s3:// and gs:// work out "
                                  f"of the box, others need fsspec and the scheme's package "
                                  f"(e.g. pip install adlfs for az://)") from None
        _FILESYSTEMS[key] = fs
    return fs


class RemotePath:
    """A file or directory on object storage, with the parts of :class:`pathlib.Path` curate uses.

    ``str()`` gives the URL. Directories are key prefixes: ``mkdir`` does nothing, ``is_dir`` is true
    when any key lies below."""

    __slots__ = ("scheme", "path")

    def __init__(self, url: str):
        scheme, _, rest = str(url).partition("://")
        self.scheme = scheme.lower()
        self.path = posixpath.normpath(rest).lstrip("/") if rest.strip("/") else ""
        if not self.path:
            raise CurateError(f"{url}: an object-storage URL needs a bucket, e.g. {scheme}://my-bucket/runs/x")

    # -- naming ---------------------------------------------------------------------------------
    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(self.scheme, self.bucket)

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other) -> bool:
        return str(self) < str(other)

    def __truediv__(self, part: str | os.PathLike) -> "RemotePath":
        return RemotePath(f"{self.scheme}://{self.path}/{os.fspath(part)}")

    def joinpath(self, *parts) -> "RemotePath":
        out = self
        for p in parts:
            out = out / p
        return out

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def parent(self) -> "RemotePath":
        head = posixpath.dirname(self.path)
        return RemotePath(f"{self.scheme}://{head}") if head else self

    def with_name(self, name: str) -> "RemotePath":
        return self.parent / name

    def resolve(self) -> "RemotePath":
        """A URL is already absolute (``Path.resolve`` counterpart)."""
        return self

    absolute = expanduser = resolve

    # -- queries ----------------------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def stat(self):
        """Size and modification time (``st_size``, ``st_mtime_ns``), as ``os.stat`` gives them."""
        from types import SimpleNamespace

        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(self))
        return SimpleNamespace(st_size=int(info.size or 0), st_mtime_ns=int(info.mtime_ns or 0))

    def relative_to(self, other: "RemotePath") -> str:
        prefix = str(other).rstrip("/") + "/"
        if not str(self).startswith(prefix):
            raise ValueError(f"{self} is not below {other}")
        return str(self)[len(prefix):]

    def iterdir(self) -> Iterator["RemotePath"]:
        """Direct children (files and prefixes), temporary keys left out."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        except OSError:
            return iter(())
        return iter(sorted(RemotePath(f"{self.scheme}://{i.path}") for i in infos
                           if not posixpath.basename(i.path).startswith(".")))

    def glob(self, pattern: str) -> Iterator["RemotePath"]:
        """Children whose name matches ``pattern`` (one level, like ``Path.glob('part-*.parquet')``)."""
        if "/" in pattern or "**" in pattern:
            raise ValueError(f"RemotePath.glob supports one-level patterns, got {pattern!r}")
        return iter([p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern)])

    # -- reading and writing ------------------------------------------------------------------------
    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """Nothing to do: object stores create prefixes with their first key."""

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        write_bytes(self, data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        write_bytes(self, text.encode(encoding))

    def open(self, mode: str = "rb"):
        """A binary file object (``rb``: buffered, seekable, with ``readline``; ``wb``: a stream, not
        atomic: use :func:`atomic_path`)."""
        if mode == "rb":
            return io.BufferedReader(_RawInput(self.fs.open_input_file(self.path)), buffer_size=1 << 20)
        if mode == "wb":
            return self.fs.open_output_stream(self.path)
        raise ValueError(f"RemotePath.open: mode must be 'rb' or 'wb', got {mode!r}")

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise


class _RawInput(io.RawIOBase):
    """A pyarrow random-access file as a raw Python stream (for ``io.BufferedReader``)."""

    def __init__(self, f):
        self.f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.f.read(len(b))
        b[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def close(self) -> None:
        self.f.close()
        super().close()


Location = Union[Path, RemotePath]


def location(value: str | os.PathLike | RemotePath) -> Location:
    """A :class:`RemotePath` for URLs, a :class:`pathlib.Path` for everything else (``file://`` too)."""
    if isinstance(value, RemotePath):
        return value
    text = os.fspath(value) if not isinstance(value, str) else value
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if is_url(text):
        return RemotePath(text)
    return Path(text)


def is_remote(value) -> bool:
    return isinstance(value, RemotePath) or (isinstance(value, str) and is_url(value))


def arrow_source(p: Location | str) -> tuple[pafs.FileSystem | None, str]:
    """``(filesystem, path)`` to hand to a pyarrow reader or writer."""
    p = location(p)
    if isinstance(p, RemotePath):
        return p.fs, p.path
    return None, str(p)


def join(base: Location | str, *parts: str) -> Location:
    """``base / part / ...`` for a path or a URL string."""
    out = location(base)
    for part in parts:
        out = out / part
    return out


# -- Parquet and JSON -----------------------------------------------------------------------------------
def read_table(p: Location | str, columns: list[str] | None = None, **kwargs) -> pa.Table:
    fs, path = arrow_source(p)
    return pq.read_table(path, columns=columns, filesystem=fs, **kwargs)


def read_schema(p: Location | str) -> pa.Schema:
    fs, path = arrow_source(p)
    if fs is None:
        return pq.read_schema(path)
    with fs.open_input_file(path) as f:
        return pq.read_schema(f)


def parquet_file(p: Location | str) -> pq.ParquetFile:
    """A :class:`pyarrow.parquet.ParquetFile` (metadata, row groups) for a local or remote file."""
    fs, path = arrow_source(p)
    return pq.ParquetFile(path, filesystem=fs) if fs is not None else pq.ParquetFile(path)


@contextmanager
def atomic_path(final: Location | str) -> Iterator[Location]:
    """A temporary location beside ``final`` to write to; it becomes ``final`` only if the block
    succeeds (local: ``os.replace``; object stores: server-side copy to the final key, see above)."""
    final = location(final)
    if isinstance(final, RemotePath):
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            yield tmp
            final.fs.move(tmp.path, final.path)
        finally:
            tmp.unlink(missing_ok=True)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(name)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary-encoding: not image bytes, not fixed-size vectors (signatures,
    embeddings), whose values almost never repeat (trying costs a write and a read twice as long)."""
    def dense(t: pa.DataType) -> bool:
        return (pa.types.is_fixed_size_list(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
                or ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type)))
    return [f.name for f in schema if not dense(f.type)]


def write_table(table: pa.Table, p: Location | str, *, compression: str = "zstd") -> None:
    """Write a Parquet file so that it appears whole or not at all."""
    with atomic_path(p) as tmp:
        fs, path = arrow_source(tmp)
        pq.write_table(table, path, compression=compression, filesystem=fs,
                       use_dictionary=_dictionary_columns(table.schema))


def write_bytes(p: Location | str, data: bytes) -> None:
    """Write bytes so that the file appears whole or not at all."""
    with atomic_path(p) as tmp:
        if isinstance(tmp, RemotePath):
            with tmp.fs.open_output_stream(tmp.path) as f:
                f.write(data)
        else:
            tmp.write_bytes(data)


def write_json(obj: Any, p: Location | str) -> None:
    """Write JSON (pretty, UTF-8) atomically."""
    write_bytes(p, (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def rmtree(p: Location | str) -> None:
    """Delete a directory (or prefix) and everything below it; nothing if it does not exist."""
    p = location(p)
    if isinstance(p, RemotePath):
        if p.exists():
            p.fs.delete_dir(p.path)
        return
    if p.exists():
        shutil.rmtree(p)


def remove_temporaries(root: Location | str) -> int:
    """Delete the temporary files that writers killed mid-write left below ``root`` (names
    ``.<name>.<random>.tmp``); returns how many. Call it only while no writer is running."""
    root = location(root)
    if isinstance(root, RemotePath):
        try:
            infos = root.fs.get_file_info(pafs.FileSelector(root.path, recursive=True, allow_not_found=True))
        except OSError:
            return 0
        stale = [i.path for i in infos if i.type == pafs.FileType.File and _is_temporary(posixpath.basename(i.path))]
        for path in stale:
            root.fs.delete_file(path)
        return len(stale)
    if not root.is_dir():
        return 0
    stale = [p for p in root.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def local_only(p: Location, what: str) -> Path:
    """``p`` as a local path, or a clear error for features that need a POSIX filesystem."""
    if isinstance(p, RemotePath):
        raise CurateError(f"{what} needs a local filesystem, but the run directory is {p}; copy the run "
                          f"directory to local disk (e.g. 'aws s3 sync {p} runs/{p.name}') and use that copy")
    return p
