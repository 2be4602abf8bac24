"""Helpers shared by the benchmark scripts: locating the shared data, timing, peak memory."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(sub: str) -> Path:
    p = SHARED_DATA / sub
    if not p.exists():
        sys.exit(f"benchmark data not found: {p} (the benchmarks need ../shared/data beside the repository)")
    return p


def machine() -> str:
    import psutil

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"


class PeakRSS:
    """Samples the resident memory of this process and all its children; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())
