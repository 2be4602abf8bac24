"""The review app's server process: Streamlit, which stops when the ``curate review`` that started it dies.

``curate review`` starts ``python -m curate.commands.review_server PARENT_PID <streamlit args>`` in its
own process group. The child watches its parent two ways: on Linux the kernel sends it SIGTERM when
the parent dies (``PR_SET_PDEATHSIG``), and everywhere a watcher thread notices that the parent pid
changed. SIGTERM makes Streamlit shut down cleanly; if it has not exited 10 s later, the process ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

GRACE_SECONDS = 10.0


def _stop_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os._exit(1)


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc/musl: the watcher thread does the job
        pass


def watch_parent(parent: int, *, interval: float = 0.5) -> threading.Thread:
    """Stop this process when ``parent`` is no longer its parent (it died; we were re-parented)."""
    _set_parent_death_signal()

    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        _stop_self()

    t = threading.Thread(target=loop, name="curate-parent-watch", daemon=True)
    t.start()
    return t


def main(argv: list[str]) -> None:
    if not argv or not argv[0].isdigit():
        sys.exit("usage: python -m curate.commands.review_server PARENT_PID STREAMLIT_ARGS...")
    if hasattr(signal, "pthread_sigmask"):  # the parent blocks its stop signals while starting us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    watch_parent(int(argv[0]))
    from streamlit.web import cli as stcli

    sys.argv = ["streamlit", *argv[1:]]
    sys.exit(stcli.main())


if __name__ == "__main__":  # pragma: no cover - run as a child process
    main(sys.argv[1:])
