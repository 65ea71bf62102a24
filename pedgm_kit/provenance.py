"""Where each manual mask came from: drawn by hand, or a model's draft corrected in the annotation loop.

A mask the model drafted and a person then corrected leans toward that model (the original study's
masks were made this way), so a comparison against the baseline on such masks favours the baseline
(and the variants fine-tuned from it). Each labelled scan's mask is therefore given a provenance:

- ``"corrected draft"``: the scan is listed in an annotation loop's review log
  (:class:`pedgm_kit.viewer.ReviewLog`, the ``drafts/review.csv`` notebook 01 writes and
  :class:`pedgm_kit.annotate.CorrectionEditor` updates when a draft is saved or accepted): a model
  drafted its mask, whatever the review said of it afterwards;
- ``"manual"``: any other labelled scan.

Notebook 02 adds the column ``mask_provenance`` to the scans (:func:`with_mask_provenance`), so
``scans.json`` and ``manifest.json`` carry it; notebook 05 reports the Dice on manual-only masks beside
all masks whenever corrected drafts are among the evaluated scans (:func:`provenance_table`), and the
run report shows that table (:func:`report_section`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from .exceptions import InputFileError
from .layout import DRAFTS_DIR, REVIEW_CSV, RunLayout

__all__ = ["CORRECTED", "MANUAL", "PROVENANCE_COLUMN", "PROVENANCE_FILE", "mask_provenance", "provenance_table",
           "read_provenance", "report_section", "review_log_paths", "with_mask_provenance"]

MANUAL = "manual"
CORRECTED = "corrected draft"
PROVENANCE_COLUMN = "mask_provenance"
"""Column of the scans table (and key of ``manifest.json``) holding each scan's mask provenance."""

PROVENANCE_FILE = "provenance.csv"
"""Notebook 05's table of the Dice on manual-only masks beside all (``<output_dir>/evaluation/``)."""

_RULE = ("a scan listed in an annotation loop's review log had its mask drafted by a model (then corrected or "
         "accepted): 'corrected draft'; every other labelled scan: 'manual'")


def review_log_paths(logs: str | os.PathLike | Sequence[str | os.PathLike] | None, *,
                     preprocessed_dir: str | os.PathLike | None = None) -> list[Path]:
    """The review logs to read: those named (each must exist), then notebook 01's ``drafts/review.csv``.

    ``preprocessed_dir`` is notebook 01's ``<output_dir>/preprocessed``; its sibling
    ``drafts/review.csv`` is added when it exists.

    Raises
    ------
    InputFileError
        A named log does not exist.
    """
    named = [logs] if isinstance(logs, (str, os.PathLike)) else list(logs or [])
    paths = []
    for log in named:
        if not str(log):
            continue
        path = Path(log)
        if not path.is_file():
            raise InputFileError(f"No such file or no access: '{path}' (review log named in review_logs)")
        paths.append(path)
    if preprocessed_dir is not None:
        own = Path(preprocessed_dir).parent / DRAFTS_DIR / REVIEW_CSV
        if own.is_file() and all(own.resolve() != p.resolve() for p in paths):
            paths.append(own)
    return paths


def mask_provenance(scan_ids: Iterable[str], review_logs: Sequence[str | os.PathLike] = ()) -> dict[str, str]:
    """``{scan_id: "manual" | "corrected draft"}`` by the rule of the module docstring.

    Each log is read with :class:`pedgm_kit.viewer.ReviewLog` (its checks: a ``scan_id`` column, no scan
    twice, known statuses), so an unreadable log fails with one line naming it.
    """
    from .viewer.review import ReviewLog

    drafted: set[str] = set()
    for log in review_logs:
        drafted |= set(ReviewLog(log).to_frame()["scan_id"].astype(str))
    return {str(s): CORRECTED if str(s) in drafted else MANUAL for s in scan_ids}


def with_mask_provenance(frame: pd.DataFrame, review_logs: Sequence[str | os.PathLike] = ()) -> pd.DataFrame:
    """A copy of the scans table with the :data:`PROVENANCE_COLUMN` (kept where the table already has it)."""
    out = frame.copy()
    found = mask_provenance(out["scan_id"].astype(str), review_logs)
    if PROVENANCE_COLUMN in out.columns:
        known = out[PROVENANCE_COLUMN].isin([MANUAL, CORRECTED])
        out.loc[~known, PROVENANCE_COLUMN] = out.loc[~known, "scan_id"].astype(str).map(found)
    else:
        out[PROVENANCE_COLUMN] = out["scan_id"].astype(str).map(found)
    return out


def read_provenance(split_manifest: str | os.PathLike | None) -> dict[str, str]:
    """``{scan_id: provenance}`` recorded in notebook 02's manifest (empty without one)."""
    if not split_manifest or not Path(split_manifest).is_file():
        return {}
    from .data_creation import read_manifest

    return {str(k): str(v) for k, v in (read_manifest(split_manifest).get(PROVENANCE_COLUMN) or {}).items()}


def provenance_table(tidy: pd.DataFrame, provenance: Mapping[str, str], *, baseline: str, n_boot: int = 2000,
                     seed: int = 0) -> pd.DataFrame | None:
    """Each model's mean per-person Dice on all masks and on manual-only masks, side by side.

    The same aggregation and interval rule as the headline (:func:`pedgm_kit.stats.headline_table`,
    persons as the unit), once on every evaluated scan (``masks = "all"``) and once on the scans whose
    mask is ``"manual"`` (``masks = "manual only"``). None when no evaluated scan has a corrected draft
    (the two rows would be the same) or when provenance is unknown for every scan.

    Returns
    -------
    pandas.DataFrame or None
        Columns ``masks``, ``n_corrected_scans`` and those of the headline table.
    """
    from .stats import headline_table

    scans = tidy.loc[tidy["level"] == "scan", "scan"].astype(str).unique()
    corrected = [s for s in scans if provenance.get(s) == CORRECTED]
    if not corrected:
        return None
    manual = [s for s in scans if provenance.get(s) == MANUAL]
    parts = [headline_table(tidy, baseline=baseline, n_boot=n_boot, seed=seed).assign(masks="all")]
    if manual:
        parts.append(headline_table(tidy[tidy["scan"].astype(str).isin(manual)], baseline=baseline, n_boot=n_boot,
                                    seed=seed).assign(masks="manual only"))
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "masks", out.pop("masks"))
    out.insert(1, "n_corrected_scans", [len(corrected) if m == "all" else 0 for m in out["masks"]])
    out.attrs["rule"] = _RULE
    return out


def report_section(run: str | os.PathLike) -> dict | None:
    """The run report's section on mask provenance (:mod:`pedgm_kit.report`), or None; its tables are
    ``{"title", "frame", "csv"}`` records that the report folds.

    Reads ``manifest.json``'s :data:`PROVENANCE_COLUMN` (counts per provenance) and notebook 05's
    :data:`PROVENANCE_FILE` (manual-only beside all).
    """
    layout = RunLayout(run)
    try:
        recorded = json.loads(layout.manifest.read_text(encoding="utf-8")).get(PROVENANCE_COLUMN) or {}
    except (OSError, ValueError, AttributeError):
        recorded = {}
    table_path = layout.evaluation / PROVENANCE_FILE
    if not recorded and not table_path.is_file():
        return None
    counts = pd.Series(list(recorded.values()), dtype=str).value_counts()
    text = ("Masks: " + ", ".join(f"{int(counts.get(k, 0))} {k}" for k in (MANUAL, CORRECTED))
            + f" (rule: {_RULE}). ")
    tables = []
    if table_path.is_file():
        frame = pd.read_csv(table_path)
        keep = [c for c in ("masks", "model", "n_persons", "n_scans", "mean", "ci_low", "ci_high", "ci_method",
                            "mean_diff", "diff_ci_low", "diff_ci_high") if c in frame.columns]
        text += ("Corrected drafts lean toward the model that drafted them, so the Dice on manual-only masks is shown "
                 "beside the Dice on all masks (same persons-as-unit means and interval rule).")
        tables.append({"title": "Dice: all masks and manual-only masks", "frame": frame[keep], "csv": table_path})
    else:
        text += "No corrected draft among the evaluated scans: every result above is on manual masks."
    return {"id": "provenance", "title": "Where the masks came from", "text": text, "tables": tables, "figures": []}
