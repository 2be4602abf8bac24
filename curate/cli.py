"""The ``curate`` command line: run, validate, schema, stages, status, export (and plug-in commands)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from curate import __version__
from curate.errors import ConfigError, CurateError
from curate.textui import fmt_num, render_table


class CurateGroup(click.Group):
    """Turns curate's own errors into one clear line (exit 2 for config errors, 1 otherwise)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for m in exc.messages:
                click.secho(f"error: {m}", fg="red", err=True)
            ctx.exit(2)
        except CurateError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.secho("interrupted: finished shards are kept; run the same command again to resume", fg="yellow", err=True)
            ctx.exit(130)


@click.group(cls=CurateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Curate raw datasets into small, high-quality training sets.

    \b
    curate run pipelines/demo.yaml      raw data -> shards + annotations + flags
    curate status runs/demo             what was flagged, by stage and reason
    curate review runs/demo             accept / reject flagged items in a browser
    curate export runs/demo --format parquet --out curated/
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@main.command()
@click.argument("pipeline_file", type=click.Path(dir_okay=False))
@click.option("--output", "-o", help="Run directory (default: the pipeline's 'output', else runs/<name>).")
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Worker processes (default: the pipeline's 'workers').")
@click.option("--force", is_flag=True, help="Redo everything, ingest included.")
@click.option("--from", "from_stage", metavar="STAGE", help="Rerun this stage (name or index) and every stage after it.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run(pipeline_file, output, workers, force, from_stage, quiet):
    """Run (or resume) a pipeline. Stages that are up to date are skipped."""
    from curate.config import load_pipeline
    from curate.runner import Runner

    pipeline = load_pipeline(pipeline_file)
    runner = Runner(pipeline, output=output, workers=workers, force=force, from_stage=from_stage, quiet=quiet)
    manifest = runner.execute()
    rows = []
    for r in runner.report:
        secs = r.get("seconds")
        n = r.get("rows")
        rate = (n / secs) if (secs and n and r["status"] == "ran") else None
        rows.append([r["step"], r["status"], n, r.get("flagged", r.get("quarantined")), r.get("review"),
                     r.get("dropped"), secs, rate])
    click.echo(render_table(["step", "status", "rows", "flagged", "review", "dropped", "seconds", "rows/s"], rows,
                            right={2, 3, 4, 5, 6, 7}))
    inp = manifest.input
    if inp.quarantined:
        click.echo(f"\n{inp.quarantined} input item(s) quarantined ({', '.join(f'{k}: {v}' for k, v in inp.quarantine_reasons.items())}); "
                   f"see {runner.run.quarantine_dir}")
    if inp.repeated_ids:
        click.echo(f"\n{inp.repeated_ids} input item(s) repeat an earlier item's source and content; their ids are "
                   "numbered <id>-2, <id>-3, ... (see docs/safety.md)")
    click.echo(f"\nrun directory: {runner.run.root}   next: curate status {runner.run.root}")


@main.command()
@click.argument("pipeline_file", type=click.Path(dir_okay=False))
def validate(pipeline_file):
    """Check a pipeline file without running it."""
    from curate.config import load_pipeline

    p = load_pipeline(pipeline_file)
    click.echo(f"{pipeline_file}: OK ({len(p.stages)} stage{'s' if len(p.stages) != 1 else ''}: "
               f"{', '.join(s.name for s in p.stages) or 'none'})")


@main.command()
def schema():
    """Print the JSON schema of pipeline files (for editor autocompletion)."""
    from curate.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("name", required=False)
def stages(name):
    """List the registered stages and their parameters (or one stage in detail)."""
    from curate.stages.base import registry

    reg = registry()
    if name is not None and name not in reg:
        raise CurateError(f"no stage {name!r}; registered stages: {', '.join(reg)}")
    for sname, cls in reg.items():
        if name and sname != name:
            continue
        extra = f"  [needs curate[{cls.extra}]]" if cls.extra else ""
        click.secho(f"{sname}", bold=True, nl=False)
        click.echo(f"  ({cls.kind}) {cls.describe()}{extra}")
        for fname, f in cls.Params.model_fields.items():
            default = f.default if f.default_factory is None else f.default_factory()
            desc = f" - {f.description}" if f.description else ""
            click.echo(f"    {fname} = {json.dumps(default, default=str)}{desc}")
        if cls.flags:
            click.echo(f"    flags: {', '.join(cls.flags)}")
        click.echo("")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(run_dir, as_json):
    """Counts by stage, reason and action for a run, and what an export would keep now."""
    from curate.fate import summarize_fates
    from curate.rundir import RunDir

    run = RunDir(run_dir)
    manifest = run.require()
    inp = manifest.input
    summary = summarize_fates(run) if inp is not None and inp.status == "done" else {}
    if as_json:
        click.echo(json.dumps({"input": inp.model_dump(mode="json") if inp else None, "stages": [
            s.model_dump(mode="json", include={"dir", "status", "stats", "summary", "seconds"}) for s in manifest.stages],
            "outcome": summary}, indent=2, default=str))
        return
    click.echo(f"run {manifest.name} ({run.root}), status: {manifest.status or 'incomplete'}")
    if inp is None:
        return
    click.echo(f"input: {inp.format} {inp.path}: {fmt_num(inp.rows)} rows in {inp.shards} shards, "
               f"{fmt_num(inp.quarantined)} quarantined")
    for reason, n in inp.quarantine_reasons.items():
        click.echo(f"  quarantined {reason}: {n}")
    if inp.repeated_ids:
        click.echo(f"  repeated source and content (ids numbered <id>-2, ...): {inp.repeated_ids}")
    rows = []
    for s in manifest.stages:
        st = s.stats
        rows.append([s.dir, s.status, st.rows, st.flagged, st.review, st.dropped,
                     ", ".join(f"{k}: {v}" for k, v in st.reasons.items()) or "-"])
    click.echo("")
    click.echo(render_table(["stage", "status", "rows", "flagged", "review", "dropped", "reasons"], rows, right={2, 3, 4, 5}))
    if summary:
        click.echo(f"\noutcome: {summary['keep']:,} keep, {summary['review']:,} review, {summary['drop']:,} drop "
                   f"(of {summary['items']:,})")
        for title, key in (("dropped", "drop_reasons"), ("for review", "review_reasons")):
            for reason, n in summary[key].items():
                click.echo(f"  {title} {reason}: {n}")
        decided = ", ".join(f"{k}: {v:,}" for k, v in summary["decisions"].items()) or "none"
        click.echo(f"reviewed: {decided}")
        click.echo(f"an export now (--pending {summary['pending_rule']}) keeps {summary['kept']:,} of {summary['items']:,}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl", "imagefolder", "webdataset", "hf"]),
              default="parquet", show_default=True,
              help="hf: a Hugging Face datasets dataset (save_to_disk; load it with datasets.load_from_disk).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--pending", type=click.Choice(["keep", "drop"]), default="drop", show_default=True,
              help="What to do with items flagged for review that no reviewer decided (see 'curate review').")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--keep-original-caption", is_flag=True,
              help="With a caption_repair stage: also export the ingested text as caption_original.")
@click.option("--annotations", is_flag=True,
              help="With --format hf: add every stage's flag, detail and scores as '<stage dir>.<column>' columns.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def export(run_dir, fmt, out, pending, overwrite, keep_original_caption, annotations, quiet):
    """Export the curated items of a run."""
    from curate.export import export_run
    from curate.runlock import run_lock

    with run_lock(run_dir, "curate export"):  # no 'curate run' rewrites the run while it is exported
        em = export_run(run_dir, out, fmt=fmt, pending=pending, overwrite=overwrite, quiet=quiet,
                        keep_original_caption=keep_original_caption, annotations=annotations)
    c = em["counts"]
    click.echo(f"exported {c['kept']:,} of {c['in']:,} items as {fmt} to {out} "
               f"({c['dropped']:,} left out; details in {Path(out) / 'export_manifest.json'})")


def _register_plugins() -> None:
    from curate.commands import register_all

    register_all(main)


_register_plugins()

if __name__ == "__main__":  # pragma: no cover
    main()
