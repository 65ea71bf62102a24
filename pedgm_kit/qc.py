"""The cohort QC page: one static, self-contained HTML page to check hundreds of masks quickly.

``pedgm segment`` on several scans writes ``qc/index.html`` beside its summary CSV (as SCT's QC
report, but static: it opens from a ``file://`` URL, no server, no network). One row per scan:

- a montage of up to :data:`MONTAGE_SLICES` slices with GM, the mask outlined on the image, cropped
  around the cord (``qc/scans/<scan>.png``, loaded lazily, so 500 rows open at once);
- the GM area (mm², mean over the covered slices: :mod:`pedgm_kit.morphometrics`);
- the per-scan uncertainty (mean of the per-slice scores of ``--uncertainty``) and its rank in the
  cohort (1 = least certain);
- flags (:data:`FLAGS`): the scan failed; slices without GM; GM area outside the cohort's 1st-99th
  percentile (nearest rank: with fewer than 100 scans nothing is outside); uncertainty above the
  cohort's upper Tukey fence (Q3 + 1.5 IQR).

Columns sort by a click on their header (a few lines of inline JavaScript); "flagged only" hides the
rest. :func:`write_qc_page` writes the PNGs and the page atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .io import write_text
from .layout import PAGE_FILE

__all__ = ["FLAGS", "MONTAGE_SLICES", "qc_rows", "render_montage", "write_qc_page"]

MONTAGE_SLICES = 6
"""Slices per montage (evenly spaced over the slices with GM)."""

FLAGS: dict[str, str] = {
    "failed": "segmentation failed",
    "empty": "slices without GM",
    "area": "GM area outside the cohort's 1st-99th percentile",
    "uncertain": "uncertainty above the cohort's upper fence (Q3 + 1.5 IQR)",
}
"""Flag names and what they mean (shown in the page's legend)."""

_TILE_PX = 96
_FIELD_MM = 16.0  # side of the field of view of a tile (an adult cord is about 12 mm wide)


def render_montage(image, mask, *, n_slices: int = MONTAGE_SLICES, tile_px: int = _TILE_PX) -> np.ndarray:
    """Up to ``n_slices`` slices with GM side by side, the mask outlined, cropped around it.

    Slices are shown as the viewer shows them (:func:`pedgm_kit.geometry.display_plane`: anterior
    up, radiological); each tile shows 16 mm x 16 mm centred on that slice's mask (the whole slice
    when the mask is empty). Returns an RGB ``uint8`` array ``(tile_px, k * tile_px, 3)``.
    """
    from .geometry import Canonical, display_plane
    from .io import load_image
    from .viewer import render_slice

    img = load_image(image, what="image")
    canon = Canonical(img)
    seg = Canonical(load_image(mask, what="GM mask", allow_constant=True)).data > 0.5
    n = canon.data.shape[2]
    with_gm = np.flatnonzero(seg.any(axis=(0, 1)))
    pool = with_gm if with_gm.size else np.arange(n)
    picks = pool[np.unique(np.linspace(0, pool.size - 1, min(n_slices, pool.size)).round().astype(int))]
    planes = [display_plane(canon.data, z) for z in picks]
    masks = [display_plane(seg, z) for z in picks]
    rows, cols = planes[0].shape
    half_r = int(np.ceil(_FIELD_MM / 2 / float(canon.spacing_mm[1])))  # display rows run along working axis 1
    half_c = int(np.ceil(_FIELD_MM / 2 / float(canon.spacing_mm[0])))
    vmin, vmax = (float(v) for v in np.percentile(canon.data, (0.5, 99.5)))
    tiles = []
    for plane, m in zip(planes, masks):
        box = (0, rows, 0, cols)
        if m.any():  # a fixed field of view centred on this slice's GM, so scans compare at one scale
            r, c = (int(round(v)) for v in np.argwhere(m).mean(axis=0))
            box = (max(0, r - half_r), min(rows, r + half_r), max(0, c - half_c), min(cols, c + half_c))
        rgb = render_slice(plane, manual=m, mode="both", opacity=0.5, zoom_box=box, vmin=vmin, vmax=vmax,
                           outline_px=1)
        tiles.append(_fit(rgb, tile_px))
    return np.concatenate(tiles, axis=1)


def _fit(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` scaled (nearest neighbour, aspect kept) and centred on a black ``size`` x ``size`` tile."""
    from PIL import Image

    h, w = rgb.shape[:2]
    f = size / max(h, w)
    new_w, new_h = max(1, min(size, round(w * f))), max(1, min(size, round(h * f)))
    scaled = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.NEAREST))
    tile = np.zeros((size, size, 3), dtype=np.uint8)
    r0, c0 = (size - new_h) // 2, (size - new_w) // 2
    tile[r0:r0 + new_h, c0:c0 + new_w] = scaled
    return tile


def _scan_uncertainty(output: str) -> float:
    from .segment import uncertainty_paths

    csv = uncertainty_paths(output)[1]
    if not csv.is_file():
        return float("nan")
    scores = pd.read_csv(csv)["score"]
    return float(scores.mean()) if len(scores) else float("nan")


def qc_rows(summary: pd.DataFrame, *, morphometrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One QC row per scan: ``scan, file, output, status, error, gm_area_mm2, empty_slices,
    uncertainty, uncertainty_rank, flags`` (flags: a list of :data:`FLAGS` names)."""
    from .morphometrics import scan_keys

    rows = []
    # keyed as the morphometrics table keys scans: unique per scan, never by file name alone
    for (_, row), scan in zip(summary.iterrows(), scan_keys(summary["file"].astype(str))):
        done = row["status"] in ("ok", "skipped") and Path(str(row["output"])).is_file()
        area = empty = float("nan")
        if done and morphometrics is not None and len(morphometrics):
            mine = morphometrics[(morphometrics["scan"] == scan) & (morphometrics["metric"] == "gm_area_mm2")]
            per_slice = mine[mine["slice"].notna()]
            whole = mine[mine["slice"].isna() & mine["level"].isna()]
            area = float(whole["value"].iloc[0]) if len(whole) else float("nan")
            empty = int((per_slice["value"] == 0).sum()) if len(per_slice) else float("nan")
        elif done:
            area = float(row.get("gm_area_mean_mm2", float("nan")))
        rows.append({"scan": scan, "file": str(row["file"]), "output": str(row["output"]), "status": row["status"],
                     "error": "" if pd.isna(row.get("error")) else str(row.get("error")), "done": done,
                     "gm_area_mm2": area, "empty_slices": empty,
                     "uncertainty": _scan_uncertainty(str(row["output"])) if done else float("nan")})
    table = pd.DataFrame(rows)
    areas = table.loc[table["done"], "gm_area_mm2"].dropna().to_numpy(float)
    lo, hi = ((np.percentile(areas, 1, method="lower"), np.percentile(areas, 99, method="higher"))
              if areas.size else (-np.inf, np.inf))
    u = table["uncertainty"].dropna().to_numpy(float)
    fence = np.inf
    if u.size:
        q1, q3 = np.percentile(u, (25, 75))
        fence = q3 + 1.5 * (q3 - q1)
    table["uncertainty_rank"] = table["uncertainty"].rank(ascending=False, method="min").astype("Int64")
    flags = []
    for _, r in table.iterrows():
        f = []
        if r["status"] == "failed":
            f.append("failed")
        if r["done"] and r["empty_slices"] == r["empty_slices"] and r["empty_slices"] > 0:
            f.append("empty")
        if r["done"] and (r["gm_area_mm2"] < lo or r["gm_area_mm2"] > hi):
            f.append("area")
        if r["uncertainty"] > fence:
            f.append("uncertain")
        flags.append(f)
    table["flags"] = flags
    table.attrs.update(area_range_mm2=(float(lo), float(hi)), uncertainty_fence=float(fence))
    return table


def write_qc_page(
    summary: pd.DataFrame,
    folder: str | os.PathLike,
    *,
    morphometrics: pd.DataFrame | None = None,
    n_slices: int = MONTAGE_SLICES,
    title: str = "pedgm segment: cohort QC",
) -> Path:
    """Write ``<folder>/index.html`` and the montages ``<folder>/scans/<scan>.png`` of a cohort.

    Parameters
    ----------
    summary : pandas.DataFrame
        The table of :func:`pedgm_kit.segment.segment_files` (``file, output, status, error``).
    folder : path-like
        The QC folder (created), usually ``qc/`` beside the summary CSV.
    morphometrics : pandas.DataFrame, optional
        The long table of :func:`pedgm_kit.morphometrics.cohort_morphometrics` (GM area per scan,
        empty slices); without it the summary's mean area is shown.
    n_slices : int, default 6
    title : str

    Returns
    -------
    pathlib.Path
        The page. A montage that cannot be drawn (unreadable image) is left out of its row.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    from ._utils import atomic_path
    from .exceptions import PedgmError
    from .viewer import to_png

    folder = Path(folder)
    (folder / "scans").mkdir(parents=True, exist_ok=True)
    rows = qc_rows(summary, morphometrics=morphometrics)
    shown = []
    for _, r in rows.iterrows():
        png = None
        if r["done"]:
            try:
                rgb = render_montage(r["file"], r["output"], n_slices=n_slices)
                target = folder / "scans" / f"{r['scan']}.png"
                with atomic_path(target) as tmp:
                    Path(tmp).write_bytes(to_png(rgb))
                png = {"src": f"scans/{target.name}", "width": int(rgb.shape[1]), "height": int(rgb.shape[0])}
            except PedgmError:
                png = None
        rank = r["uncertainty_rank"]
        shown.append({**r.to_dict(), "png": png, "uncertainty_rank": None if pd.isna(rank) else int(rank)})
    env = Environment(loader=PackageLoader("pedgm_kit", "templates"), autoescape=select_autoescape(["html", "j2"]))
    page = env.get_template("qc.html.j2").render(
        title=title, rows=shown, flags=FLAGS, n_flagged=sum(bool(r["flags"]) for r in shown),
        area_range=rows.attrs["area_range_mm2"], has_uncertainty=bool(rows["uncertainty"].notna().any()),
    )
    return write_text(page, folder / PAGE_FILE)
