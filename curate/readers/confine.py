"""Readers never read outside the dataset root: the one rule, used by every reader.

:func:`confine` checks a name found in the input (a path in a manifest, a file found by walking a
folder, a zip or tar member name) and, for folders, resolves it with every symlink followed. A name
that is absolute, carries a drive or contains a ``..`` component, or a path whose real location is
not under the real dataset root, raises :class:`OutsideRoot` (quarantine reason ``outside_root``;
no bytes are read or kept). :func:`walk` lists a folder following directory links that stay inside
the root and do not loop; links that leave the root or loop are not walked.

There is a window between the check and the read (a link swapped in between is followed); readers
are meant for data you control, not for hostile writers racing the ingest.
"""

from __future__ import annotations

import logging
import os
import stat
from functools import lru_cache
from pathlib import Path

from curate.imageinfo import BadImage

log = logging.getLogger(__name__)


class OutsideRoot(BadImage):
    """A name or link that points outside the dataset root (reason ``outside_root``)."""

    def __init__(self, detail: str):
        super().__init__("outside_root", detail)


class TooLarge(BadImage):
    """An item over a size limit (reason ``file_too_large``); the limit is named in the detail."""

    def __init__(self, detail: str):
        super().__init__("file_too_large", detail)


@lru_cache(maxsize=64)
def _real_root(root: str) -> Path:
    return Path(root).resolve()


def _check_name(name: str) -> str:
    if not name or "\x00" in name:
        raise BadImage("bad_path", f"{name!r} is not a usable file name (empty or with a NUL character)")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":" and unified[0].isalpha()):
        raise OutsideRoot(f"{name!r} is an absolute path; names must be relative to the dataset root")
    if ".." in unified and ".." in unified.split("/"):
        raise OutsideRoot(f"{name!r} contains '..'; names must stay inside the dataset root")
    return unified


def inside(path: Path, root: Path) -> bool:
    """``path`` is ``root`` or below it (both already resolved)."""
    return path == root or root in path.parents


def confine(root: Path | None, name: str) -> Path | str:
    """Check ``name`` against the dataset root; the one confinement rule of every reader.

    With ``root=None`` (a member of a zip or tar archive) only the name is checked and returned.
    With a folder ``root`` the real path (symlinks resolved) is returned if it lies inside the real
    root. Raises :class:`OutsideRoot`, or :class:`~curate.imageinfo.BadImage` ``bad_path`` for a
    name with a NUL character.
    """
    unified = _check_name(name)
    if root is None:
        return unified
    return Path(_real_path(root, unified, name))


def _real_path(root: Path, unified: str, name: str) -> str:
    real_root = _real_root(str(root))
    # fast path: no link among the components below the (already real) root -> the path is real
    cur = str(real_root)
    for part in unified.split("/"):
        if part in ("", "."):
            continue
        cur = f"{cur}/{part}" if cur != "/" else f"/{part}"
        try:
            if stat.S_ISLNK(os.lstat(cur).st_mode):
                break
        except OSError:  # missing (or unreadable): nothing to follow; the read reports it
            return cur
    else:
        return cur
    real = (real_root / unified).resolve()
    if not inside(real, real_root):
        raise OutsideRoot(f"{name!r} resolves to {real}, outside the dataset root {real_root}")
    return str(real)


def read_inside(root: Path, name: str, *, max_bytes: int) -> bytes:
    """The bytes of ``name`` under ``root``, confined (see :func:`confine`) and at most ``max_bytes``.

    Raises :class:`~curate.imageinfo.BadImage` with reason ``outside_root``, ``bad_path``,
    ``missing_file``, ``file_too_large`` or ``unreadable_file``.
    """
    path = _real_path(root, _check_name(name), name)
    try:
        # O_NONBLOCK: a named pipe in the folder must not hang the ingest (regular files ignore the flag)
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadImage("unreadable_file", f"{name} is not a regular file (a pipe, socket or device)")
            size = st.st_size
            if size > max_bytes:
                raise TooLarge(f"{name}: {size:,} bytes is over the limit of {max_bytes:,} (input.max_file_bytes)")
            data = f.read((max_bytes if size == 0 else size) + 1)  # size 0: empty, or a /proc-like file
            if len(data) > size:  # it grew while we read: read on, up to the limit
                data += f.read(max_bytes + 1 - len(data)) or b""
    except FileNotFoundError:
        raise BadImage("missing_file", f"{name} not found under {root}") from None
    except IsADirectoryError:
        raise BadImage("missing_file", f"{name} is a directory") from None
    except OSError as exc:
        raise BadImage("unreadable_file", f"{name}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # grew while reading, or a device file
        raise TooLarge(f"{name}: more than {max_bytes:,} bytes (input.max_file_bytes)")
    return data


def walk(root: Path) -> list[str]:
    """Every file under ``root`` as a sorted POSIX relative path; hidden files and folders skipped.

    Directory links are followed when their target is inside the root and not a folder already on
    the way down (a loop); others are skipped with a warning. File links are listed as they are:
    :func:`confine` decides when they are read.
    """
    real_root = Path(root).resolve()
    out: list[str] = []
    stack: list[tuple[str, Path, frozenset]] = [("", real_root, frozenset({real_root}))]
    while stack:
        rel_dir, real_dir, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot list %s: %s", real_dir, exc.strerror or exc)
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            rel = f"{rel_dir}{e.name}"
            try:
                is_dir = e.is_dir()  # follows links
            except OSError:
                is_dir = False
            if not is_dir:
                out.append(rel)
                continue
            if e.is_symlink():
                target = Path(e.path).resolve()
                if not inside(target, real_root):
                    log.warning("not walking %s: the link points outside the dataset root (to %s)", rel, target)
                    continue
                if target in ancestors:
                    log.warning("not walking %s: the link loops back to %s", rel, target)
                    continue
            else:
                target = real_dir / e.name
            stack.append((rel + "/", target, ancestors | {target}))
    out.sort()
    return out
