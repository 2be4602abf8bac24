"""``image_quality``: decode check, size, aspect ratio, near-constant, dark, bright and blurry images."""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.stages.base import Column, MapStage, Outputs, Score, StageParams, flag_table, register_stage

OUTPUTS = Outputs(
    columns=(
        Column("decodable", pa.bool_(), description="the image decodes fully"),
        Column("min_side", pa.int32(), "score", "shorter side in pixels"),
        Column("aspect", pa.float32(), "score", "long side / short side"),
        Column("luma_mean", pa.float32(), "score", "mean luma (0-255)"),
        Column("luma_std", pa.float32(), "score", "luma standard deviation (0-255)"),
        Column("sharpness", pa.float32(), "score", "variance of the Laplacian (longer side scaled to 512)"),
    ),
    scores=(
        Score(column="min_side", flag="too_small", param="min_side", flags_when="below", label="shorter side"),
        Score(column="aspect", flag="extreme_aspect", param="max_aspect", flags_when="above", label="aspect ratio"),
        Score(column="luma_std", flag="near_constant", param="min_std", flags_when="below", label="luma std"),
        Score(column="luma_mean", flag="too_dark", param="dark_below", flags_when="below", label="mean luma"),
        Score(column="luma_mean", flag="too_bright", param="bright_above", flags_when="above", label="mean luma"),
        Score(column="sharpness", flag="blurry", param="min_sharpness", flags_when="below", label="sharpness"),
    ),
)
_SCHEMA = OUTPUTS.schema


class ImageQualityParams(StageParams):
    min_side: int = Field(32, ge=1, description="flag images whose shorter side is below this many pixels")
    max_aspect: float = Field(4.0, ge=1.0, description="flag images whose long/short side ratio is above this")
    min_std: float = Field(3.0, ge=0, description="flag near-constant images: luma standard deviation below this (0-255)")
    dark_below: float = Field(15.0, ge=0, le=255, description="flag very dark images: mean luma below this (0-255)")
    bright_above: float = Field(245.0, ge=0, le=255, description="flag very bright images: mean luma above this (0-255)")
    min_sharpness: Optional[float] = Field(
        None, ge=0, description="flag blurry images: variance of the Laplacian (luma, longer side scaled to 512) below this; off by default, try 50"
    )


def _measure(data: bytes) -> tuple[bool, float, float, float, str | None]:
    """Decode fully; return (ok, luma mean, luma std, Laplacian variance, error)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            gray = im.convert("L")
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the finding
        return False, float("nan"), float("nan"), float("nan"), f"{type(exc).__name__}: {exc}"
    if max(gray.size) > 512:
        gray.thumbnail((512, 512))
    a = np.asarray(gray, dtype=np.float32)
    if a.shape[0] < 3 or a.shape[1] < 3:
        return True, float(a.mean()), float(a.std()), 0.0, None
    lap = -4 * a[1:-1, 1:-1] + a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]
    return True, float(a.mean()), float(a.std()), float(lap.var()), None


@register_stage
class ImageQuality(MapStage):
    """Decode check, min side, max aspect ratio, near-constant / very dark / very bright, and blur."""

    name = "image_quality"
    Params = ImageQualityParams
    flags = ("undecodable", "too_small", "extreme_aspect", "near_constant", "too_dark", "too_bright", "blurry")

    def input_columns(self) -> list[str]:
        return ["image", "width", "height"]

    OUTPUTS = OUTPUTS

    def process(self, batch: pa.Table) -> pa.Table:
        p: ImageQualityParams = self.params
        cols = {name: [] for name in _SCHEMA.names}
        flags, details = [], []
        for data, w, h in zip(batch.column("image").to_pylist(), batch.column("width").to_pylist(),
                              batch.column("height").to_pylist()):
            if data is None:
                for c in cols:
                    cols[c].append(None)
                flags.append(None)
                details.append(None)
                continue
            ok, mean, std, sharp, err = _measure(data)
            short, long_ = (min(w, h), max(w, h)) if w and h else (0, 0)
            aspect = long_ / short if short else float("inf")
            for c, v in zip(_SCHEMA.names, (ok, short, aspect, mean, std, sharp)):
                cols[c].append(v)
            found: list[tuple[str, str]] = []
            if not ok:
                found.append(("undecodable", f"image does not decode ({err})"))
            else:
                if short < p.min_side:
                    found.append(("too_small", f"{w}x{h}: shorter side {short} < {p.min_side}"))
                if aspect > p.max_aspect:
                    found.append(("extreme_aspect", f"{w}x{h}: aspect ratio {aspect:.2f} > {p.max_aspect}"))
                if std < p.min_std:
                    found.append(("near_constant", f"luma std {std:.1f} < {p.min_std} (almost one colour)"))
                elif mean < p.dark_below:
                    found.append(("too_dark", f"mean luma {mean:.1f} < {p.dark_below}"))
                elif mean > p.bright_above:
                    found.append(("too_bright", f"mean luma {mean:.1f} > {p.bright_above}"))
                if p.min_sharpness is not None and sharp < p.min_sharpness:
                    found.append(("blurry", f"sharpness (Laplacian variance) {sharp:.1f} < {p.min_sharpness}"))
            flags.append(found[0][0] if found else None)
            details.append("; ".join(d for _, d in found) if found else None)
        return flag_table(cols, flags, details, schema=_SCHEMA)
