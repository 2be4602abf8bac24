"""``curate review`` (the Streamlit app) and ``curate decisions`` (counts and CSV of review decisions)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import click


def _finished_run(run_dir: str):
    from curate.errors import CurateError
    from curate.rundir import RunDir

    run = RunDir(run_dir)
    manifest = run.require()
    if manifest.get("status") != "done":
        raise CurateError(f"{run.root}: the run did not finish; complete it with 'curate run' first")
    return run


def streamlit_command(run_dir: str, *, host: str, port: int) -> list[str]:
    """The command line that serves the review app for ``run_dir``."""
    import curate.app.review as app

    return [sys.executable, "-m", "streamlit", "run", str(Path(app.__file__).resolve()),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--global.developmentMode", "false",
            "--", str(run_dir)]


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

        run = _finished_run(run_dir)
        require("streamlit", "app", "The review app")
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
        proc = subprocess.Popen(streamlit_command(str(run.root.resolve()), host=host, port=port), env=env)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            rc = 0
        if rc:
            raise click.ClickException(f"the review app exited with status {rc}")

    @main.command()
    @click.argument("run_dir", type=click.Path(file_okay=False))
    @click.option("--out", type=click.Path(dir_okay=False), help="Write the decisions to this CSV file.")
    @click.option("--history", is_flag=True, help="With --out: every row of the log (undo included), not only the latest per item.")
    def decisions(run_dir, out, history):
        """Review progress and decisions of a run (counts by status, stage and reviewer)."""
        from curate.cli import render_table
        from curate.decisions import DecisionStore
        from curate.review import ReviewQueue

        run = _finished_run(run_dir)
        queue = ReviewQueue(run.root)
        store: DecisionStore = queue.store
        latest = store.latest()
        rows = []
        for view, title in (("review", "to review"), ("audit", "auto-dropped")):
            mask = queue.view_mask(view)
            st = Counter(queue.status[mask].tolist())
            rows.append([title, int(mask.sum()), st.get(1, 0), st.get(2, 0), st.get(0, 0)])
        prog = queue.progress("review")
        prog.pop("all")
        for d in prog:
            m = queue.view_mask("review") & queue.index[f"{d}:flag"].notna().to_numpy()
            st = Counter(queue.status[m].tolist())
            rows.append([f"  {d}", int(m.sum()), st.get(1, 0), st.get(2, 0), st.get(0, 0)])
        click.echo(render_table(["items", "total", "accepted", "rejected", "pending"], rows))
        by_reviewer = Counter((d.reviewer or "(unnamed)", d.decision) for d in latest.values())
        if by_reviewer:
            names = sorted({r for r, _ in by_reviewer})
            click.echo("")
            click.echo(render_table(["reviewer", "accepted", "rejected", "pending"],
                                    [[n, by_reviewer[(n, "accepted")], by_reviewer[(n, "rejected")],
                                      by_reviewer[(n, "pending")]] for n in names]))
        stale = sum(1 for i in latest if i not in queue)
        if stale:
            click.echo(f"\n{stale:,} decided item(s) are no longer flagged by this run (kept in review.db)")
        if out:
            n = store.write_csv(out, history=history)
            click.echo(f"\nwrote {n:,} rows to {out}")
