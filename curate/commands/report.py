"""``curate report RUN``: one self-contained HTML report of a run."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    main.add_command(report)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="The HTML file to write (default: RUN/report/index.html).")
@click.option("--top", type=click.IntRange(min=0), default=24, show_default=True,
              help="Per gallery: the most extreme items by score to show.")
@click.option("--sample", type=click.IntRange(min=0), default=24, show_default=True,
              help="Per gallery: items drawn at random from the rest.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random samples.")
@click.option("--page-size", type=click.IntRange(min=1), default=24, show_default=True,
              help="Cards per gallery page (pages turn inside the file).")
@click.option("--pending", type=click.Choice(["keep", "drop"]), default="drop", show_default=True,
              help="The export rule for undecided review items, as in 'curate export'.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def report(run_dir, out, top, sample, seed, page_size, pending, quiet):
    """Write one HTML file about a finished run: summary, stages, galleries, review, evaluation.

    It opens from disk in any browser with no network: charts, scripts and thumbnails are inside it."""
    from curate.report import build_report
    from curate.runlock import run_lock

    with run_lock(run_dir, "curate report"):  # no 'curate run' rewrites the shards while they are read
        path = build_report(run_dir, out, top=top, sample=sample, seed=seed, page_size=page_size,
                            pending=pending, quiet=quiet)
    size = path.stat().st_size / 1e6
    click.echo(f"wrote {path} ({size:.1f} MB); open it in a browser: file://{path.resolve()}")
