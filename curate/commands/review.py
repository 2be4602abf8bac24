"""``curate review`` (the Streamlit app) and ``curate decisions`` (counts and CSV of review decisions)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import click


def _finished_run(run_dir: str, action: str = "review it"):
    from curate.rundir import RunDir

    run = RunDir(run_dir)
    run.require_finished(action)
    return run


def streamlit_command(run_dir: str, *, host: str, port: int) -> list[str]:
    """The command line that serves the review app for ``run_dir`` (a child that dies with this process)."""
    import curate.review.app as app

    return [sys.executable, "-m", "curate.commands.review_server", str(os.getpid()), "run", str(Path(app.__file__).resolve()),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
            "--", str(run_dir)]


class _Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, n))


def stop_group(proc: subprocess.Popen, *, timeout: float = 15.0) -> int:
    """SIGTERM the server's process group, wait for it; SIGKILL the group if it does not stop in time."""
    for sig, wait in ((signal.SIGTERM, timeout), (getattr(signal, "SIGKILL", signal.SIGTERM), 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def serve(cmd: list[str], *, env: dict) -> tuple[int, int | None]:
    """Run the server in its own process group until it exits or this process gets SIGTERM, SIGINT or
    SIGHUP; then stop the whole group and wait for it. Returns (exit status, signal received or None)."""

    def on_signal(signum, frame):
        raise _Stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    proc = None
    try:
        mask = hasattr(signal, "pthread_sigmask")
        if mask:  # no signal between the fork and knowing the child's pid (the child unblocks them)
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        finally:
            if mask:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return proc.wait(), None
    except _Stop as stop:
        for s in STOP_SIGNALS:  # a second Ctrl+C while stopping must not leave the server behind
            signal.signal(s, signal.SIG_IGN)
        return (stop_group(proc) if proc is not None else 0), stop.signum
    finally:
        if proc is not None and proc.poll() is None:
            stop_group(proc)
        for s, h in previous.items():
            signal.signal(s, h)


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("run_dir", type=click.Path(file_okay=False))
    @click.option("--reviewer", help="Your name, recorded with each decision (default: your login name).")
    @click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Address to bind; anything but 127.0.0.1/localhost exposes the app to the network.")
    def review(run_dir, reviewer, port, host):
        """Review flagged items in a browser (Streamlit app); decisions go to RUN_DIR/review.db."""
        from curate.errors import require
        from curate.review.queue import build_index
        from curate.runlock import run_lock

        run = _finished_run(run_dir)
        require("streamlit", "app", "The review app")
        with run_lock(run.root, "curate review (index build)"):
            index = build_index(run, progress=True)  # cached in the run: the app's first page is then fast
        env = dict(os.environ, CURATE_REVIEW_RUN=str(run.root.resolve()))
        if reviewer:
            env["CURATE_REVIEWER"] = reviewer
        n_review = int((index["action"] == "review").sum()) if len(index) else 0
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        click.echo(f"Reviewing {run.root}: {n_review:,} items to review, {len(index) - n_review:,} auto-dropped (audit view)")
        click.echo(f"Open http://{shown}:{port} in your browser (Ctrl+C to stop)", err=False)
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.secho(f"warning: bound to {host}: anyone who can reach this address can review", fg="yellow", err=True)
        rc, signum = serve(streamlit_command(str(run.root.resolve()), host=host, port=port), env=env)
        if signum is not None:
            click.echo(f"stopped the review server ({signal.Signals(signum).name})", err=True)
            sys.exit(0 if signum == signal.SIGINT else 128 + signum)
        if rc:
            raise click.ClickException(f"the review app exited with status {rc}")

    @main.command()
    @click.argument("run_dir", type=click.Path(file_okay=False))
    @click.option("--out", type=click.Path(dir_okay=False), help="Write the decisions to this CSV file.")
    @click.option("--history", is_flag=True, help="With --out: every row of the log (undo included), not only the latest per item.")
    def decisions(run_dir, out, history):
        """Review progress and decisions of a run (counts by status, stage and reviewer)."""
        from curate.decisions import DecisionStore
        from curate.fate import iter_fates, load_decisions
        from curate.textui import render_table

        run = _finished_run(run_dir, "list its decisions")
        latest = load_decisions(run)
        views = {"review": "to review", "drop": "auto-dropped"}
        by_view: dict[str, Counter] = {v: Counter() for v in views}
        by_stage: dict[str, Counter] = {}
        flagged_ids = set()
        for fates in iter_fates(run, decisions=latest):
            for item, action, status, reasons in zip(fates.ids, fates.stage_action, fates.status, fates.reasons):
                if action == "keep" and status is None:
                    continue
                flagged_ids.add(item)
                key = status or "pending"
                by_view.setdefault(action, Counter())[key] += 1
                if action == "review":
                    for d in dict.fromkeys(r.split(":", 1)[0] for r in reasons):
                        by_stage.setdefault(d, Counter())[key] += 1
        rows = []
        for view, title in views.items():
            c = by_view[view]
            rows.append([title, sum(c.values()), c["accepted"], c["rejected"], c["pending"]])
        for d, c in by_stage.items():
            rows.append([f"  {d}", sum(c.values()), c["accepted"], c["rejected"], c["pending"]])
        click.echo(render_table(["items", "total", "accepted", "rejected", "pending"], rows))
        by_reviewer = Counter((d.reviewer or "(unnamed)", d.decision) for d in latest.values())
        if by_reviewer:
            names = sorted({r for r, _ in by_reviewer})
            click.echo("")
            click.echo(render_table(["reviewer", "accepted", "rejected", "pending"],
                                    [[n, by_reviewer[(n, "accepted")], by_reviewer[(n, "rejected")],
                                      by_reviewer[(n, "pending")]] for n in names]))
        stale = sum(1 for i in latest if i not in flagged_ids)
        if stale:
            click.echo(f"\n{stale:,} decided item(s) are no longer flagged by this run (kept in review.db)")
        store = DecisionStore(run.review_db)
        if out:
            n = store.write_csv(out, history=history)
            click.echo(f"\nwrote {n:,} rows to {out}")
