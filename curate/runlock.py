"""The run-directory lock: one writer at a time per run directory.

``curate run`` (the driver, on any executor), ``curate export`` and the review index build hold
``<run>/.curate.lock`` while they write. A second holder gets :class:`RunLocked`, one line saying who
holds it (pid, host, since when, what) and what to do.

How it works: the lock file is created next to the manifest and locked with ``flock`` (an advisory
lock the kernel drops when the holding process dies, however it dies), and holds JSON naming the
holder. A lock file that is still there but no longer locked was left by a holder that died (SIGKILL,
power loss): it is taken over with a warning. The holder removes the file when it is done.

Filesystems: on local filesystems this is exact. On NFS, Linux emulates ``flock`` with NFS byte-range
locks (NFSv4, or NFSv3 with ``lockd``), which work across client machines; with ``nolock`` mounts
they are local to one machine only, so two machines could both hold the lock. Where ``flock`` is not
supported at all (some FUSE and SMB mounts) the lock falls back to the file's existence plus a
liveness check of the recorded pid, which is only possible on the same host: a lock left by a dead
process on another host must then be removed by hand (the message says which file).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from curate.errors import CurateError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

LOCK_NAME = ".curate.lock"


class RunLocked(CurateError):
    """The run directory is held by another process."""


def _holder_text(info: dict) -> str:
    what = info.get("command") or "a curate process"
    return f"{what} (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')})"


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on one run directory (see the module docstring).

    >>> with RunLock("runs/demo", "curate run"):   # doctest: +SKIP
    ...     ...
    """

    def __init__(self, run_dir: str | Path, command: str, *, create: bool = False):
        self.run_dir = Path(run_dir)
        self.create = create
        self.path = self.run_dir / LOCK_NAME
        self.command = command
        self._fd: int | None = None
        self.took_over: dict | None = None  # the dead holder's record, when a stale lock was taken over

    def _refuse(self, info: dict) -> RunLocked:
        return RunLocked(f"{self.run_dir} is in use by {_holder_text(info)}; wait for it to finish "
                         f"(or stop it), then retry. If that process is gone, delete {self.path}")

    def acquire(self) -> "RunLock":
        """Take the lock; raises :class:`RunLocked` if another process holds it.

        A run directory that does not exist is created with ``create=True``; otherwise there is
        nothing to protect and nothing is locked (the command reports the missing run itself).
        """
        if not self.run_dir.is_dir():
            if not self.create:
                return self
            self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # retries only when the file is replaced under us
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked is False:
                os.close(fd)
                raise self._refuse(_read_info(self.path))
            if locked is None:  # flock unsupported here: existence + pid liveness
                os.close(fd)
                return self._acquire_without_flock()
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file after we opened it: start again
                os.close(fd)
                continue
            previous = _read_info(self.path)
            if previous:
                self.took_over = previous
                log.warning("%s: taking over a stale lock left by %s, which is no longer running",
                            self.run_dir, _holder_text(previous))
            self._fd = fd
            self._write(fd)
            return self
        raise CurateError(f"{self.path}: could not take the run-directory lock (the lock file keeps changing)")

    @staticmethod
    def _flock(fd: int) -> bool | None:
        """True: locked; False: held by someone else; None: this filesystem has no flock."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise

    def _info(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def _write(self, fd: int) -> None:
        data = json.dumps(self._info()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def _acquire_without_flock(self) -> "RunLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = _read_info(self.path)
                if info.get("host") == socket.gethostname() and not _pid_alive(info.get("pid")):
                    log.warning("%s: taking over a stale lock left by %s, which is no longer running",
                                self.run_dir, _holder_text(info))
                    self.took_over = info
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._refuse(info) from None
            self._fd = fd
            self._write(fd)
            return self
        raise self._refuse(_read_info(self.path))

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlink while still locked: a waiter re-checks the inode
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def run_lock(run_dir: str | Path, command: str, *, create: bool = False) -> Iterator[RunLock | None]:
    """Hold the lock of ``run_dir`` for the block; raises :class:`RunLocked` if another process holds it.

    Run directories on object storage have no lock (there is no ``flock`` there): a warning says so,
    and the block runs (``None`` is yielded); run one writer at a time per remote run directory."""
    from curate.storage import is_remote

    if is_remote(run_dir):
        log.warning("%s: run directories on object storage are not locked; run one curate command that "
                    "writes to it at a time", run_dir)
        yield None
        return
    lock = RunLock(run_dir, command, create=create)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def lock_holder(run_dir: str | Path) -> dict | None:
    """Who holds the lock of ``run_dir`` now (its record), or None if nobody does."""
    from curate.storage import is_remote

    if is_remote(run_dir):
        return None
    path = Path(run_dir) / LOCK_NAME
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        held = RunLock._flock(fd)
        if held is True:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        info = _read_info(path)
        if held is None and info.get("host") == socket.gethostname() and not _pid_alive(info.get("pid")):
            return None
        return info or {"command": "unknown"}
    finally:
        os.close(fd)
