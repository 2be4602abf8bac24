"""``caption_repair``: clean captions with rules, pick among candidates with CLIP, caption with CoCa.

YAML::

    - caption_repair:
        rules: [mojibake, html, urls, whitespace, filenames, boilerplate, repeats, truncation, quotes]
        boilerplate: ["courtesy of", "photo credit"]     # added to the default phrases (boilerplate_mode: replace to use only these)
        candidates: [rules, siblings, generated]
        generate: {model: coca_ViT-B-32, pretrained: mscoco_finetuned_laion2b_s13b_b90k, only_below: 0.22}
        min_gain: 0.02
        action: review

The original caption is never replaced silently: ``caption_original`` keeps it, ``caption`` is the
chosen one, ``caption_source`` says where it came from and the flag ``caption_repaired`` carries the
change in ``detail``. See docs/caption_repair.md.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Literal, Optional

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.captions.choose import Candidate, choose
from curate.captions.rules import RULE_ORDER, RuleSet, boilerplate_phrases
from curate.errors import CurateError
from curate.stages.base import Column, MapStage, Outputs, StageParams, flag_table, register_stage

log = logging.getLogger(__name__)

RuleName = Literal["html", "mojibake", "whitespace", "urls", "filenames", "boilerplate", "repeats", "truncation", "quotes"]
CandidateKind = Literal["rules", "siblings", "generated"]

_CANDIDATE_TYPE = pa.struct([pa.field("source", pa.string()), pa.field("text", pa.string()),
                             pa.field("score", pa.float32())])
OUTPUTS = Outputs(
    columns=(
        Column("caption_original", pa.string(), description="the caption as ingested"),
        Column("caption", pa.string(), "replacement_text", "the chosen caption (the repair, when one was made)"),
        Column("caption_source", pa.string(), description="where the chosen caption came from: original, rules, "
                                                          "sibling or generated"),
        Column("rules_applied", pa.list_(pa.string()), description="the rules that changed the caption"),
        Column("score_original", pa.float32(), "score", "CLIP score of the original caption"),
        Column("score_caption", pa.float32(), "score", "CLIP score of the chosen caption"),
        Column("candidates", pa.list_(_CANDIDATE_TYPE), description="every candidate with its source and score"),
    ),
    # A repaired caption is a proposed edit: the item stays; accepting the edit applies it.
    edit_flags={"caption_repaired": "caption"},
)
_SCHEMA = OUTPUTS.schema


class GenerateParams(BaseModel):
    """CoCa captioning for poorly aligned items."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("coca_ViT-B-32", description="open_clip CoCa architecture or local-dir:PATH")
    pretrained: Optional[str] = Field("mscoco_finetuned_laion2b_s13b_b90k",
                                      description="pretrained tag, checkpoint file, or none (random weights, tests only)")
    only_below: float = Field(0.22, ge=-1, le=1,
                              description="caption only items whose current caption's CLIP score is below this")
    max_length: int = Field(30, ge=6, le=76, description="longest generated caption, in tokens")
    num_beams: int = Field(3, ge=1, le=16, description="beam width of the caption search (1 = greedy)")

    @model_validator(mode="after")
    def _local_dir(self):
        if self.model.startswith("local-dir:") and "pretrained" not in self.model_fields_set:
            self.pretrained = None  # a local-dir: model brings its own weights
        return self


class CaptionRepairParams(StageParams):
    rules: list[RuleName] = Field(default_factory=lambda: list(RULE_ORDER),
                                  description=f"rules to apply (they always run in the order {', '.join(RULE_ORDER)})")
    boilerplate: list[str] = Field(default_factory=list,
                                   description="phrases removed by the 'boilerplate' rule, added to the default list "
                                               "(boilerplate_mode: extend) or instead of it (replace)")
    boilerplate_mode: Literal["extend", "replace"] = Field(
        "extend", description="extend: the default phrases plus 'boilerplate'; replace: only 'boilerplate'")
    candidates: list[CandidateKind] = Field(
        default_factory=lambda: ["rules", "siblings"],
        description="captions to choose from: rules (the rule-cleaned original), siblings (other captions of "
                    "the same image, from meta), generated (CoCa captions; settings in 'generate'; needs an embed stage)")
    generate: Optional[GenerateParams] = Field(None, description="CoCa captioning (for candidates: generated)")
    min_gain: float = Field(0.02, ge=0, le=2,
                            description="a sibling or generated caption must beat the current caption's CLIP score by this")
    embed_stage: str = Field("embed", description="earlier stage whose image embeddings rank the candidates by CLIP "
                                                  "score; without it only the rules apply")
    siblings_key: str = Field("other_captions", description="meta key holding the other captions of the same image")
    batch_size: int = Field(64, ge=1, description="captions per CLIP text batch / images per CoCa batch")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps (for the CLIP and CoCa models)")

    @model_validator(mode="after")
    def _check(self):
        if "generated" in self.candidates and self.generate is None:
            self.generate = GenerateParams()
        if self.generate is not None and "generated" not in self.candidates:
            raise ValueError("generate is set but 'generated' is not in candidates; add it or remove generate")
        return self


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _siblings(meta: str | None, key: str) -> list[str]:
    if not meta:
        return []
    try:
        value = json.loads(meta).get(key)
    except (json.JSONDecodeError, AttributeError):
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@register_stage
class CaptionRepair(MapStage):
    """Repair captions: rules (HTML, mojibake, URLs, file names, boilerplate...), CLIP-ranked siblings, CoCa."""

    name = "caption_repair"
    Params = CaptionRepairParams
    flags = ("caption_repaired", "caption_junk")
    extra = "captions"
    version = "1"

    def __init__(self, params, ctx=None):
        super().__init__(params, ctx)
        self.rules = RuleSet(params.rules, boilerplate=boilerplate_phrases(params.boilerplate, params.boilerplate_mode))
        self._scorer = None
        self._captioner = None
        if "generated" in params.candidates:
            # CoCa is a model stage: one model in the main process locally, an actor pool on Ray (a GPU each
            # where the cluster has GPUs); rules and CLIP-ranked siblings alone run as parallel tasks
            self.parallel = False

    # -- which columns --------------------------------------------------------------------------------
    @property
    def embedding_ref(self) -> str | None:
        """``<embed_stage>.image_embedding`` if an earlier stage provides it (then CLIP ranks)."""
        ref = f"{self.params.embed_stage}.image_embedding"
        available = self.ctx.available_columns if self.ctx is not None else ()
        return ref if ref in available else None

    def input_columns(self) -> list[str]:
        p: CaptionRepairParams = self.params
        cols = ["text", "meta"]
        if self.embedding_ref:
            cols.append(self.embedding_ref)
        elif "generated" in p.candidates and self.ctx is not None:
            raise CurateError(f"caption_repair: candidates 'generated' needs CLIP scores, but no stage "
                              f"{p.embed_stage!r} with an image_embedding column runs before it; add an embed stage "
                              f"earlier or set embed_stage")
        if "generated" in p.candidates:
            cols.append("image")
        return cols

    OUTPUTS = OUTPUTS

    # -- models -----------------------------------------------------------------------------------------
    def _embed_model_params(self) -> tuple[str, str | None]:
        """model/pretrained of the embed stage that made the image embeddings (told by the runner)."""
        entry = self.ctx.upstream_stage(self.params.embed_stage) if self.ctx is not None else None
        if entry is not None and "model" in entry.params:
            return entry.params["model"], entry.params.get("pretrained")
        raise CurateError(f"caption_repair: no earlier stage {self.params.embed_stage!r} with a model runs before it")

    def setup(self) -> None:
        if self.embedding_ref:
            from curate.models.clip import load_clip

            model, pretrained = self._embed_model_params()
            self._scorer = load_clip(model, pretrained, self.params.device)
        if "generated" in self.params.candidates:
            from curate.captions.models import Captioner

            g = self.params.generate
            self._captioner = Captioner(g.model, g.pretrained, self.params.device, max_length=g.max_length,
                                        num_beams=g.num_beams)

    # -- the work -----------------------------------------------------------------------------------------
    def process(self, batch: pa.Table) -> pa.Table:
        p: CaptionRepairParams = self.params
        texts = batch.column("text").to_pylist()
        metas = batch.column("meta").to_pylist()
        use_rules = "rules" in p.candidates
        use_siblings = "siblings" in p.candidates
        rows: list[list[Candidate]] = []
        applied_per_row: list[list[str]] = []
        for text, meta in zip(texts, metas):
            if text is None:
                rows.append([])
                applied_per_row.append([])
                continue
            res = self.rules.apply(text)
            incumbent = Candidate("rules", res.text) if (use_rules and res.changed) else Candidate("original", text)
            cands = [incumbent]
            applied_per_row.append(res.applied if use_rules else [])
            if use_siblings:
                seen = {incumbent.text}
                for sib in _siblings(meta, p.siblings_key):
                    clean = self.rules.apply(sib).text
                    if clean not in seen and any(ch.isalpha() for ch in clean):
                        seen.add(clean)
                        cands.append(Candidate("sibling", clean))
            rows.append(cands)

        score_orig: list[float | None] = [None] * len(rows)
        if self._scorer is not None:
            score_orig = self._score(batch, texts, rows)
            if self._captioner is not None:
                self._generate(batch, rows)

        return self._finish(texts, rows, applied_per_row, score_orig)

    def _image_embeddings(self, batch: pa.Table) -> np.ndarray:
        col = batch.column(self.embedding_ref).to_pylist()
        dim = next((len(v) for v in col if v is not None), 1)
        return np.array([v if v is not None else [math.nan] * dim for v in col], dtype=np.float32)

    def _score(self, batch: pa.Table, texts: list, rows: list[list[Candidate]]) -> list[float | None]:
        from curate.captions.models import clip_scores

        embs = self._image_embeddings(batch)
        wanted = [[text, *(c.text for c in cands)] if text is not None else [] for text, cands in zip(texts, rows)]
        scores = clip_scores(self._scorer, embs, wanted, batch_size=self.params.batch_size)
        orig = []
        for cands, sc in zip(rows, scores):
            if not sc or math.isnan(sc[0]):
                orig.append(None)
                continue
            orig.append(sc[0])
            for c, s in zip(cands, sc[1:]):
                c.score = s
        return orig

    def _generate(self, batch: pa.Table, rows: list[list[Candidate]]) -> None:
        from curate.captions.models import clip_scores

        g = self.params.generate
        # caption the poorly aligned (current caption's CLIP score below only_below) and the captionless
        todo = [i for i, cands in enumerate(rows) if cands and (
            not cands[0].usable or (cands[0].score is not None and cands[0].score < g.only_below))]
        if not todo:
            return
        images = batch.column("image").take(pa.array(todo)).to_pylist()
        captions = self._captioner.caption(images, batch_size=self.params.batch_size)
        embs = self._image_embeddings(batch)[todo]
        have = [(k, c) for k, c in enumerate(captions) if c]
        scores = clip_scores(self._scorer, embs[[k for k, _ in have]], [[c] for _, c in have]) if have else []
        for (k, cap), sc in zip(have, scores):
            s = sc[0] if sc and not math.isnan(sc[0]) else None
            rows[todo[k]].append(Candidate("generated", cap, s))

    def _finish(self, texts, rows, applied_per_row, score_orig) -> pa.Table:
        p: CaptionRepairParams = self.params
        out = {name: [] for name in _SCHEMA.names}
        flags, details = [], []
        for text, cands, applied, s0 in zip(texts, rows, applied_per_row, score_orig):
            out["caption_original"].append(text)
            if text is None:  # no caption at all: nothing to repair (text_quality reports empty text)
                for k in ("caption", "caption_source", "score_caption"):
                    out[k].append(None)
                out["rules_applied"].append([])
                out["score_original"].append(None)
                out["candidates"].append([])
                flags.append(None)
                details.append(None)
                continue
            pick = choose(cands, min_gain=p.min_gain)
            chosen = cands[pick]
            out["caption"].append(chosen.text)
            out["caption_source"].append(chosen.source)
            out["rules_applied"].append(applied)
            out["score_original"].append(s0)
            out["score_caption"].append(chosen.score)
            out["candidates"].append([{"source": c.source, "text": c.text, "score": c.score} for c in cands])
            if not chosen.usable:
                flags.append("caption_junk")
                why = f"rules ({', '.join(applied)}) left nothing" if applied else "no letters in the caption"
                details.append(f"{why}: \"{_clip(text)}\"" + ("" if len(cands) == 1 else "; no usable sibling"))
            elif chosen.text != text:
                flags.append("caption_repaired")
                details.append(self._detail(text, chosen, applied, cands[0], s0))
            else:
                flags.append(None)
                details.append(None)
        return flag_table(out, flags, details, _SCHEMA)

    def _detail(self, text: str, chosen: Candidate, applied: list[str], incumbent: Candidate, s0) -> str:
        if chosen.source == "rules":
            how = f"rules ({', '.join(applied)})"
        elif chosen.score is not None and incumbent.score is not None:
            how = f"{chosen.source} (CLIP {chosen.score:.3f} vs {incumbent.score:.3f})"
        elif chosen.score is not None:
            how = f"{chosen.source} (CLIP {chosen.score:.3f}; nothing left of the original)"
        else:
            how = f"{chosen.source} (nothing left of the original after rules {', '.join(applied)})" if applied \
                else f"{chosen.source}"
        return f"{how}: \"{_clip(text)}\" -> \"{_clip(chosen.text)}\""
