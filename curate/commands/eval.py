"""``curate eval RUN --test SPEC``: train a small model on raw vs curated (and more) and score it."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    main.add_command(eval_command)


@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--test", "test", metavar="SPEC",
              help="Trusted test set: a folder or .zip of class folders, a CSV/JSONL/Parquet manifest, a saved Hugging "
                   "Face dataset, or a YAML file with an input: mapping like a pipeline's.")
@click.option("--test-format", type=click.Choice(["imagefolder", "captions", "csv", "jsonl", "parquet", "webdataset", "coco", "hf"]),
              help="Format of --test (default: guessed from the path).")
@click.option("--test-columns", metavar="FIELD=COL,...", help="Manifest columns of --test, e.g. image=file,label=cls "
              "(default: the run's input.columns when the formats match).")
@click.option("--test-root", metavar="DIR", help="Folder that image paths in a --test manifest are relative to.")
@click.option("--test-split", type=float, metavar="FRACTION",
              help="Instead of --test: hold out this stratified fraction of the run's items (you vouch for their labels).")
@click.option("--model", default="auto", show_default=True,
              type=click.Choice(["auto", "linear", "mlp", "cnn", "tfidf"]),
              help="auto: linear probe on --features or the embed stage's vectors if one ran, else cnn for images, "
                   "tfidf for text.")
@click.option("--features", metavar="REF", help="Vectors for linear/mlp: a stage column (embed.image_embedding) or meta.<key>.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Trainings per arm (mean and spread).")
@click.option("--pending", type=click.Choice(["keep", "drop"]), default="drop", show_default=True,
              help="Undecided review items in the curated arm, as in 'curate export'.")
@click.option("--arms", default=",".join(("raw", "curated", "random", "without", "relabelled", "ceiling")), show_default=True,
              help="Which arms to train (comma-separated).")
@click.option("--clean-labels", metavar="COLUMN",
              help="Clean labels of the training items (meta.<key>, a record or stage column): adds the ceiling arm.")
@click.option("--no-leakage-check", is_flag=True, help="Skip the test-vs-train duplicate check.")
@click.option("--cosine", type=click.FloatRange(0, 1), default=0.95, show_default=True,
              help="Leakage: embedding cosine similarity at which a test item counts as a near copy.")
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (default per model: linear/mlp 30, cnn 10); "
              "under --budget samples, epochs of the raw arm: every arm trains on as many samples.")
@click.option("--budget", type=click.Choice(["samples", "epochs"]),
              help="How long each arm trains (linear, mlp, cnn): samples (default): every arm sees as many training "
                   "samples as the raw arm (--epochs x raw's items; a smaller arm runs more epochs, the same compute); "
                   "epochs: every arm --epochs passes over its own items. tfidf has no budget.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Training batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--width", type=click.IntRange(min=4), help="cnn: channels of the first conv block (default 8; 2x, 4x and 8x after).")
@click.option("--image-size", type=click.IntRange(min=8), default=32, show_default=True, help="cnn: images resized to this square.")
@click.option("--threads", type=click.IntRange(min=1), help="torch threads while training (default: 1 for linear/mlp, "
              "torch's default for cnn).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings at a time, each in its own process with --threads torch threads (default then: cores / jobs).")
@click.option("--retrain", is_flag=True, help="Train every arm again instead of reusing the stored result of the same "
              "training (model cache eval/ folder; an interrupted eval resumes from it, a training stopped half-way from its "
              "last checkpoint).")
@click.option("--curve", is_flag=True, help="Also score the test set after every epoch (torch models; eval.json's runs get "
              "'curve'): does a longer training help, or memorise wrong labels? One test-set prediction per epoch.")
@click.option("--json", "as_json", is_flag=True, help="Print eval.json instead of the table.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def eval_command(run_dir, test, test_format, test_columns, test_root, test_split, model, features, seeds, pending, arms,
                 clean_labels, no_leakage_check, cosine, epochs, budget, batch_size, lr, width, image_size, threads, jobs, retrain, curve, as_json, quiet):
    """Does curation pay? Train the same small model on the raw, curated, random-same-size, per-stage,
    relabelled and clean-label (ceiling) sets of RUN_DIR and score each on a trusted test set (writes
    RUN_DIR/eval/eval.json; see docs/eval.md)."""
    import json
    from pathlib import Path

    from curate.eval import EvalOptions, evaluate
    from curate.eval.results import render
    from curate.eval.testset import parse_columns

    opts = EvalOptions(test=test, test_format=test_format, test_columns=parse_columns(test_columns), test_root=test_root,
                       test_split=test_split, model=model, features=features, seeds=seeds, pending=pending,
                       arms=tuple(a.strip() for a in arms.split(",") if a.strip()), clean_labels=clean_labels,
                       leakage=not no_leakage_check, cosine=cosine, epochs=epochs, budget=budget, batch_size=batch_size, lr=lr,
                       width=width, image_size=image_size, threads=threads, jobs=jobs, retrain=retrain,
                       curve=curve, quiet=quiet)
    result = evaluate(run_dir, opts)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(render(result))
    out = Path(run_dir) / "eval"
    click.echo(f"\nwritten: {out / 'eval.json'} (and {out / ('eval-' + result['model']['name'] + '.json')})")
    if result.get("previous"):
        click.echo(f"the eval.json it replaced is kept as {out / result['previous']}")
