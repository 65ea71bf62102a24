"""Notebook 05's bookkeeping: which scans are evaluated (:func:`select_scans`) and the record the run
keeps of the evaluation (:func:`results_record`, ``evaluation/results.json``, read by the report)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..layout import EvaluationResults, Manifest, evaluation_path

__all__ = ["ScanSelection", "results_record", "select_scans"]


@dataclass
class ScanSelection:
    """The evaluated scans, their persons and, under cross-validation, each fold's test scans."""

    scans: list[str]
    persons: list[str]
    fold_tests: list[list[str]] | None = None
    fold_of_person: dict[str, int] = field(default_factory=dict)
    where: str = "test"

    def describe(self, shift_label: str = "") -> str:
        """What is evaluated, in a line (and SIMULATED when the data is a simulated shift)."""
        line = (f"{len(self.scans)} scan(s) of {len(self.persons)} person(s) evaluated ({self.where}): "
                + ", ".join(self.scans))
        return line + (f"\nSIMULATED DATA: {shift_label} (not real pediatric scans)" if shift_label else "")


def select_scans(index, *, labels: Mapping | Sequence, split_manifest: str | os.PathLike = "", split: str = "test",
                 split_fractions: Sequence[float] = (0.6, 0.2, 0.2), balance_on: str = "", split_seed: int = 3,
                 max_scans: int | None = None) -> ScanSelection:
    """The scans notebook 05 evaluates.

    With ``split_manifest`` (notebook 02's :class:`~pedgm_kit.layout.Manifest`): its test scans, or
    under cross-validation every fold's test scans (each person tested once, by its fold's models).
    Without it, ``split="test"``: the test part of a person-grouped automatic split, allowed for
    pretrained models only (:func:`~pedgm_kit.evaluate.scoring.check_split_source`); ``"all"``:
    every labelled scan. ``max_scans`` (smoke runs) keeps the first scans.

    Parameters
    ----------
    index : DatasetIndex
        The discovered dataset.
    labels : mapping or sequence
        The models evaluated (:func:`~pedgm_kit.evaluate.check_evaluation`).

    Returns
    -------
    ScanSelection
    """
    from ..splits import auto_split
    from .scoring import check_split_source

    fold_tests = None
    if split_manifest:
        manifest = Manifest.read(split_manifest)
        fold_tests = manifest.fold_tests()
        scans, where = manifest.test_scans(), "test"
    elif split == "test":
        check_split_source(labels, split=split, split_manifest=split_manifest)
        scans = auto_split(index, fractions=split_fractions, balance_on=balance_on or None, seed=split_seed)["test"]
        where = split
    else:
        scans, where = index.scan_ids(), split
    if max_scans is not None:
        scans = scans[:max_scans]
        fold_tests = None if fold_tests is None else [[s for s in t if s in scans] for t in fold_tests]
    person_of = index.person_of()
    fold_of_person = {} if fold_tests is None else {person_of[s]: k for k, t in enumerate(fold_tests, start=1) for s in t}
    if fold_tests:
        where = f"{len(fold_tests)} cross-validation folds, pooled"
    return ScanSelection(scans=list(scans), persons=sorted({person_of[s] for s in scans}), fold_tests=fold_tests,
                         fold_of_person=fold_of_person, where=where)


#: Tables of :func:`results_record` (``tables=``) listed under ``files`` when given, by their key.
_TABLE_FILES = {"stats": "stats", "headline": "headline", "failures": "failures", "groups": "groups",
                "per_fold": "per_fold", "uncertainty": "uncertainty_table", "efficiency": "efficiency",
                "retest_cv": "retest_cv"}


def results_record(tidy: pd.DataFrame, *, evaluation_dir: str | os.PathLike, parameters: Mapping,
                   selection: ScanSelection, tables: Mapping[str, pd.DataFrame | None], shift_label: str = "",
                   files: Mapping[str, str | os.PathLike] = ()) -> EvaluationResults:
    """Notebook 05's ``results.json`` (:class:`~pedgm_kit.layout.EvaluationResults`).

    Parameters
    ----------
    tidy : pandas.DataFrame
        The evaluation's tidy table (:func:`~pedgm_kit.evaluate.evaluate_models`).
    evaluation_dir : path-like
        The evaluation folder; ``files`` are recorded relative to it.
    parameters : mapping
        The notebook's parameters, as run.
    selection : ScanSelection
        What was evaluated (:func:`select_scans`).
    tables : mapping
        ``summary`` (:func:`~pedgm_kit.evaluate.summary_table`), ``stats``, ``headline``, ``failures``,
        and, None when not made, ``groups``, ``per_fold``, ``uncertainty``, ``efficiency``,
        ``retest_cv``, ``retest_cv_pairs``.
    shift_label : str, default ""
        The SIMULATED shift of the data, if any.
    files : mapping, optional
        Files written so far (metric tables, figures) by key; the written tables above are added.

    Returns
    -------
    EvaluationResults
    """
    from ..stats import FAILURE_PENALTY_MM
    from .scoring import SCOPE_NOTE

    evaluation_dir = Path(evaluation_dir)

    def table(name):
        value = tables.get(name)
        return value if value is not None else []

    written = dict(files)
    written.update(stats=evaluation_path(evaluation_dir, "stats"), summary_md=evaluation_path(evaluation_dir, "summary_md"),
                   headline=evaluation_path(evaluation_dir, "headline"))
    if tables.get("retest_cv") is not None:
        written.update(retest_cv=evaluation_path(evaluation_dir, "retest_cv"),
                       retest_areas_csv=evaluation_path(evaluation_dir, "retest_areas_csv"))
    for name in ("failures", "groups", "per_fold", "uncertainty", "efficiency"):
        if tables.get(name) is not None:
            written[_TABLE_FILES[name]] = evaluation_path(evaluation_dir, _TABLE_FILES[name])
    if tables.get("efficiency") is not None:
        written["efficiency_runs"] = evaluation_path(evaluation_dir, "efficiency_runs")
    tests, summary = tables["stats"], tables["summary"]
    scan_dsc = tidy.query("level == 'scan' and metric == 'DSC'")
    return EvaluationResults.new({
        "scope": SCOPE_NOTE,
        "parameters": dict(parameters),
        "shift": shift_label or None,
        "folds": len(selection.fold_tests) if selection.fold_tests else 0,
        "fold_of_person": selection.fold_of_person,
        "per_fold_dsc": table("per_fold"),
        "efficiency": table("efficiency"),
        "uncertainty": table("uncertainty"),
        "scans": selection.scans,
        "persons": selection.persons,
        "dice_per_scan": {m: g.set_index("scan")["value"].to_dict() for m, g in scan_dsc.groupby("model", sort=False)},
        "scan_metrics_mean": summary.query("level == 'scan'").pivot(index="model", columns="metric",
                                                                    values="mean").to_dict(orient="index"),
        "stats": tests,
        "headline": tables["headline"],
        "verdicts": tests.query("level == 'scan'")["verdict"].tolist(),
        "failures": tables["failures"],
        "failure_penalty_mm": FAILURE_PENALTY_MM,
        "groups": table("groups"),
        "retest_cv": table("retest_cv"),
        "retest_cv_pairs": table("retest_cv_pairs"),
        "files": {k: str(Path(v).relative_to(evaluation_dir)) for k, v in written.items()},
    })
