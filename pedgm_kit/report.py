"""The run report: ``outputs/<run>/index.html``, a real HTML page readable without Jupyter.

Rendered with Jinja2 (``templates/report.html.j2``) from the files the notebooks wrote. The page leads
with the answer: one verdict sentence per variant against the baseline (wording that follows the
interval, :func:`pedgm_kit.stats.verdict`), how intervals were chosen (the measured rule of
``benchmarks/ci_coverage.py``) and the failures, then the per-person Dice plot (points joined by
person, the baseline as reference), the per-site forest plot and the data-efficiency curve. The
compact headline table follows; every longer table is folded (``<details>``) with links to its CSV
(and the XLSX workbook). Figures are scaled to the page, links to the executed notebooks and files,
and a "what was run" block (parameters, data, versions, device, time) close the page. A simulated
domain shift is announced at the top. The page fits a 1280-pixel window: table cells wrap, nothing
is clipped.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pandas as pd

from .io import write_text
from .layout import EVALUATION_FILES, LEARNING_CURVE_PNG, SUMMARY_JSON, EvaluationResults, RunLayout, TrainPlan

__all__ = ["write_report"]

_FLOAT = "{:.3f}".format


def _table(frame: pd.DataFrame, *, classes: str = "", float_format=_FLOAT) -> str:
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if not isinstance(v, (list, dict)) else json.dumps(v))
    return frame.to_html(index=False, border=0, classes=classes or None, float_format=float_format, na_rep="–",
                         escape=True)


def _folded(title: str, frame: pd.DataFrame, run: Path, csv: Path | None, *, links: tuple[Path, ...] = ()) -> dict:
    """A table folded under ``title``, with links to its CSV (and other files) relative to ``run``."""
    files = [p for p in ((csv,) if csv else ()) + tuple(links) if p is not None and p.is_file()]
    return {"title": f"{title} ({len(frame)} rows)", "html": _table(frame),
            "links": [{"href": str(p.relative_to(run)), "label": p.suffix.lstrip(".").upper()} for p in files]}


def _csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() else None
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def _versions() -> str:
    import importlib.metadata as md

    names = ("pedgm_kit", "keras", "tensorflow", "numpy", "nibabel", "openvino", "onnxruntime", "scikit-image")
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            continue
    return f"Python {platform.python_version()}; " + ", ".join(parts)


def _training_table(run: Path) -> pd.DataFrame | None:
    """One row per training run of the run's plan (:class:`~pedgm_kit.layout.TrainPlan`) that wrote its summary."""
    rows = []
    for planned, s in TrainPlan.of(RunLayout(run).train).summaries(RunLayout(run).train):
        rows.append({
            "fold": str(planned.fold) if planned.fold else "-", "variant": s.variant,
            "persons": str(planned.persons) if planned.persons else "all", "epochs": s.epochs_run,
            "best epoch": s.best_epoch, "best val Dice": s.best_val_dice,
            "threshold": s.threshold, "threshold rule": s.threshold_rule,
            "test Dice": s.test_dice, "baseline test Dice": s.baseline_test_dice,
            "train slices/s": s.train_slices_per_s,
            "seconds": s.seconds,
        })
    return pd.DataFrame(rows) if rows else None


def _recommendation(evaluation: Path, results: dict) -> dict | None:
    """Which model to use, by the stated rule of :mod:`pedgm_kit.stats.recommend`, from the evaluation's tidy table.

    None only when there is nothing to recommend from: no evaluation table, an empty one, or no trained
    variant in it (:func:`~pedgm_kit.stats.recommend.recommend` returns None). A malformed table or a bug
    raises: a report must not hide it by dropping the section.
    """
    from .registry import BUILTIN_MODELS
    from .stats.recommend import recommend

    tidy = _csv(evaluation / EVALUATION_FILES["tidy"])
    if tidy is None or not len(tidy):
        return None
    parameters = results.get("parameters", {})
    models = parameters.get("models") or {}
    baselines = (*BUILTIN_MODELS, *([parameters["baseline"]] if parameters.get("baseline") else []))
    return recommend(tidy, baselines=baselines, model_paths=models if isinstance(models, dict) else {},
                     cv=bool(results.get("folds")))


def _figures(run: Path, pattern: str, caption=None) -> list[dict]:
    return [{"src": str(p.relative_to(run)), "caption": caption(p) if caption else str(p.relative_to(run))}
            for p in sorted(run.glob(pattern))]


def write_report(run: str | os.PathLike, *, params_file: str | os.PathLike | None = None, params: dict | None = None,
                 seconds: float | None = None) -> Path:
    """Write ``<run>/index.html`` from what the notebooks left in the run folder; returns its path."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    lay = RunLayout(run)
    run, evaluation = lay.root, lay.evaluation
    results = EvaluationResults.read(lay.results).to_json() if lay.results.is_file() else {}
    pre = json.loads(lay.preprocess_json.read_text()) if lay.preprocess_json.is_file() else {}
    shift = results.get("shift") or (pre.get("shift") or {}).get("label")

    headline_frame = _csv(lay.evaluation_file("headline"))
    headline = headline_note = ""
    if headline_frame is not None and len(headline_frame):
        keep = [c for c in ("model", "n_persons", "n_scans", "failed_scans", "mean", "ci_low", "ci_high", "ci_method",
                            "mean_diff", "diff_ci_low", "diff_ci_high", "p_holm") if c in headline_frame.columns]
        shown = headline_frame[keep].rename(columns={
            "n_persons": "persons", "n_scans": "scans", "failed_scans": "failed scans",
            "mean": "mean Dice", "ci_low": "95% CI low", "ci_high": "95% CI high", "ci_method": "interval",
            "mean_diff": "vs baseline", "diff_ci_low": "diff CI low", "diff_ci_high": "diff CI high",
            "p_holm": "p (Holm)"})
        headline = _table(shown, classes="headline")
        n = int(headline_frame["n_persons"].max())
        folds = results.get("folds") or 0
        notes = sorted({str(x) for x in headline_frame.get("interval_note", pd.Series(dtype=str)).dropna()})
        headline_note = (
            f"Scan-level Dice on the labelled slices of {n} held-out person(s), each person's scans averaged first"
            + (f", pooled over {folds} cross-validation folds (every person tested once, by the models of its fold)"
               if folds else "")
            + ". Intervals: " + (" ".join(notes) if notes else "none") + " "
            + ("" if n >= 3 else "Too few persons for an interval or a test: the numbers show the pipeline works, "
               "not whether fine-tuning helps.")
        )

    # the answer first: verdicts (wording follows the interval), failures, the lead figures
    verdicts: list[str] = []
    interval_rule = ""
    stats_frame = _csv(lay.evaluation_file("stats"))
    if stats_frame is not None and len(stats_frame) and "verdict" in stats_frame.columns:
        lead = stats_frame[(stats_frame["level"] == "scan") & (stats_frame["metric"] == "DSC")]
        verdicts = [str(v) for v in lead["verdict"].dropna()]
        methods = sorted({str(m) for m in lead.get("ci_method", pd.Series(dtype=str)).dropna() if str(m)})
        interval_rule = ("95% intervals over persons by the method the coverage benchmark "
                         "(benchmarks/ci_coverage.py) measured to hold for this many persons"
                         + (f": {', '.join(methods)}." if methods else "; here none qualified, so none is shown."))
    failures_frame = _csv(lay.evaluation_file("failures"))
    failure_lines = []
    if failures_frame is not None and len(failures_frame):
        penalty = results.get("failure_penalty_mm")
        for row in failures_frame.itertuples(index=False):
            if int(row.failed_scans):
                failure_lines.append(f"{row.model}: {int(row.failed_scans)} of {int(row.n_scans)} scans failed "
                                     f"(empty prediction: {row.scans})"
                                     + (f"; distances penalised with {float(penalty):.1f} mm" if penalty else ""))
        if not failure_lines:
            failure_lines.append("No failed (empty) prediction.")
    recommendation = _recommendation(evaluation, results)
    lead_figures = []
    lead = {"person_dice": "Dice per person: lines join one person's Dice under the baseline "
                           "(reference, left) and under each variant",
            "groups_forest": "Dice per site / covariate, n persons per row",
            "efficiency_png": "Data efficiency: held-out Dice vs training persons (fold-level intervals: descriptive)"}
    for key, caption in lead.items():
        if lay.evaluation_file(key).is_file():
            lead_figures.append({"src": lay.relative(lay.evaluation_file(key)), "caption": caption})

    sections = []
    # ---- the locked test set and the masks' provenance (pedgm_kit.evaluate.locked, pedgm_kit.provenance)
    from .evaluate.locked import report_section as locked_section
    from .provenance import report_section as provenance_section

    for section in (locked_section(run), provenance_section(run)):
        if section is not None:
            section["tables"] = [_folded(t["title"], t["frame"], run, t["csv"], links=tuple(t.get("links", ())))
                                 for t in section["tables"]]
            sections.append(section)
    # ---- end of locked test set and provenance
    if stats_frame is not None and len(stats_frame):
        keep = [c for c in ("level", "metric", "model", "n_persons", "n_scans", "failed_persons", "mean_baseline",
                            "mean_model", "mean_diff", "ci_low", "ci_high", "ci_method", "p_value", "p_holm",
                            "inference", "note") if c in stats_frame.columns]
        sections.append({"id": "stats", "title": "Paired statistics against the baseline",
                         "text": "Persons are the unit: each person's scans are averaged first, so two sessions of "
                                 "one person are one pair. Wilcoxon signed-rank over persons (fewer than 6 non-zero "
                                 "pairs: no p-value), Holm's correction, and a 95% interval only where its coverage "
                                 "was measured to hold. Slice-level rows are descriptive (no test, no interval).",
                         "tables": [_folded("Comparisons", stats_frame[keep], run, lay.evaluation_file("stats"))],
                         "figures": []})
    groups = _csv(lay.evaluation_file("groups"))
    if groups is not None and len(groups):
        sections.append({"id": "groups", "title": "Per site and per covariate",
                         "text": "Mean per-person Dice per group, n persons per row; an interval only where the "
                                 "measured rule allows one for that many persons.",
                         "tables": [_folded("Dice per group", groups.drop(columns=["interval_note"], errors="ignore"),
                                            run, lay.evaluation_file("groups"))], "figures": []})
    if failures_frame is not None and len(failures_frame):
        sections.append({"id": "failures", "title": "Failures per model",
                         "text": "Scans whose prediction is empty on the scored slices (Dice 0, distances "
                                 "undefined); their distances enter the comparisons with the stated penalty.",
                         "tables": [_folded("Failed scans", failures_frame, run, lay.evaluation_file("failures"))],
                         "figures": []})
    unc = _csv(lay.evaluation_file("uncertainty_table"))
    if unc is not None and len(unc):
        sections.append({"id": "uncertainty", "title": "Uncertainty: does the score find bad slices?",
                         "text": "Per-slice uncertainty score (spread over 9 seeded passes) against Dice: AUROC for "
                                 "slices with Dice < 0.8 (0.5 = chance) within this evaluation's condition, with a "
                                 "95% interval resampling scans (descriptive), and Spearman's rho (negative is good).",
                         "tables": [_folded("AUROC per model", unc, run, lay.evaluation_file("uncertainty_table"))],
                         "figures": _figures(run, lay.relative(lay.evaluation_file("uncertainty")))})
    per_fold = _csv(lay.evaluation_file("per_fold"))
    if per_fold is not None:
        sections.append({"id": "folds", "title": "Cross-validation: Dice per fold", "text":
                         "Mean scan-level Dice of each fold's held-out persons, and the spread across folds.",
                         "tables": [_folded("Dice per fold", per_fold, run, lay.evaluation_file("per_fold"))],
                         "figures": []})
    efficiency = _csv(lay.evaluation_file("efficiency"))
    if efficiency is not None:
        sections.append({"id": "efficiency", "title": "Data efficiency: held-out Dice vs training persons",
                         "text": "Nested subsets of each fold's training persons; 95% t-intervals across folds are "
                                 "descriptive (a handful of folds; coverage not measured). The curve is at the top.",
                         "tables": [_folded("Curve", efficiency, run, lay.evaluation_file("efficiency"),
                                            links=(lay.evaluation_file("efficiency_runs"),))],
                         "figures": []})
    summary_tables = []
    for key, title in (("summary", "All metrics: descriptive statistics"),
                       ("retest_cv", "Test-retest: coefficient of variation of GM area"),
                       ("retest_cv_pairs", "Test-retest per pair")):
        frame = _csv(lay.evaluation_file(key))
        if frame is not None and len(frame):
            if key == "summary":
                frame = frame[frame["level"] == "scan"].drop(columns=["level"])
            summary_tables.append(_folded(title, frame, run, lay.evaluation_file(key),
                                          links=(lay.evaluation_file("xlsx"),) if key == "summary" else ()))
    shown_first = tuple(EVALUATION_FILES[k] for k in ("efficiency_png", "uncertainty", "person_dice", "groups_forest"))
    evaluation_figures = [f for f in _figures(run, lay.relative(evaluation) + "/*.png")
                          if not f["src"].endswith(shown_first)]
    sections.append({"id": "evaluation", "title": "Evaluation", "text": results.get("scope", ""),
                     "tables": summary_tables, "figures": evaluation_figures})
    training = _training_table(run)
    if training is not None:
        sections.append({"id": "training", "title": "Training runs",
                         "text": "Best weights = best hard validation Dice, per person at the model's threshold "
                                 "(epoch 0 = the starting weights were never beaten). The threshold is fixed before "
                                 "training by the loss or chosen on validation (its rule is listed); test Dice is each "
                                 "model's (and the baseline's) on whole test scans, per person, at its own threshold.",
                         "tables": [_folded("Training runs", training, run, None)],
                         "figures": _figures(run, f"{lay.relative(lay.train)}/**/{LEARNING_CURVE_PNG}",
                                             lambda p: str(p.parent.relative_to(lay.train))), "grid": True})
    split_table = _csv(lay.split_table)
    sections.append({"id": "data", "title": "Data and splits", "text": "",
                     "tables": [_folded("Splits", split_table, run, lay.split_table)]
                     if split_table is not None else [],
                     "figures": _figures(run, lay.relative(lay.data) + "/*.png")
                     + _figures(run, lay.relative(lay.augment) + "/*.png")})
    qc = _figures(run, lay.relative(lay.qc) + "/*.png")
    if qc:
        sections.append({"id": "qc", "title": "Preprocessing QC", "text": f"{len(qc)} montages (window, GM outline).",
                         "tables": [], "figures": qc})

    # ---- steps reused by `pedgm run --resume` (pedgm_kit.runstate)
    from .runstate import reused_steps

    reused = reused_steps(run)
    if reused:
        sections.append({"id": "reused", "title": "Steps reused from an earlier run",
                         "text": f"pedgm run --resume kept {len(reused)} finished step(s) whose parameters and inputs "
                                 "were unchanged (state.json); their outputs and times are from when they ran.",
                         "tables": [{"title": "", "html": _table(pd.DataFrame(reused))}], "figures": []})
    # ---- end of reused steps
    notebooks = sorted(str(p.relative_to(run)) for p in run.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    tables = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.suffix in (".csv", ".xlsx", ".json", ".md")
                    and "pred" not in p.parts and ".ipynb_checkpoints" not in p.parts)
    devices = sorted({json.loads(p.read_text()).get("device", "") for p in lay.train.glob(f"**/{SUMMARY_JSON}")})
    facts = [
        ("data", f"{pre.get('data_dir', results.get('parameters', {}).get('data_dir', '?'))} "
                 f"({pre.get('n_labelled', '?')} labelled scans of {pre.get('n_persons', '?')} persons)"),
        ("simulated shift", shift or "none"),
        ("evaluated", f"{len(results.get('scans', []))} scans of {len(results.get('persons', []))} persons"
                      + (f"; {results['folds']}-fold cross-validation" if results.get("folds") else "")),
        ("models", ", ".join(results.get("parameters", {}).get("models", {}) or [])),
        ("device", "; ".join(d for d in devices if d) or "?"),
        ("versions", _versions()),
        ("host", f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)"),
    ]
    param_rows = [{"section": section, "parameter": key, "value": json.dumps(value)}
                  for section, values in (params or {}).items() for key, value in values.items()]
    env = Environment(loader=PackageLoader("pedgm_kit", "templates"), autoescape=select_autoescape(["html", "j2"]))
    page = env.get_template("report.html.j2").render(
        run_id=run.name, created=time.strftime("%Y-%m-%d %H:%M"), params_file=str(params_file or "?"),
        seconds_text=f"{seconds / 60:.1f} min" if seconds else "", shift=shift, headline=headline,
        headline_note=headline_note, verdicts=verdicts, interval_rule=interval_rule, failure_lines=failure_lines,
        recommendation=recommendation,
        lead_figures=lead_figures, sections=sections, notebooks=notebooks, tables=tables, run_facts=facts,
        parameters=_folded("Parameters", pd.DataFrame(param_rows), run, None) if param_rows else None,
    )
    return write_text(page, lay.report)
