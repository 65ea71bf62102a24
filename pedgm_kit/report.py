"""The run report: ``outputs/<run>/index.html``, a real HTML page readable without Jupyter.

Rendered with Jinja2 (``templates/report.html.j2``) from the files the notebooks wrote: a headline
table first (each model's Dice on the held-out persons, with its person-bootstrap CI and the paired
comparison to the baseline where there are enough persons), then every other table as an HTML table
(pandas' ``to_html``), figures scaled to the page, links to the executed notebooks and the CSV/XLSX
files, and a "what was run" block (parameters, data, versions, device, time). A simulated domain
shift is announced at the top. The page fits a 1280-pixel window (wide tables scroll in their box).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pandas as pd

from .io import write_text

__all__ = ["write_report"]

_FLOAT = "{:.3f}".format


def _table(frame: pd.DataFrame, *, classes: str = "", float_format=_FLOAT) -> str:
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v if not isinstance(v, (list, dict)) else json.dumps(v))
    return frame.to_html(index=False, border=0, classes=classes or None, float_format=float_format, na_rep="–",
                         escape=True)


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
    rows = []
    for path in sorted(run.glob("train/**/summary.json")):
        s = json.loads(path.read_text())
        rel = path.parent.relative_to(run / "train")
        fold = next((p for p in rel.parts if p.startswith("fold-")), "")
        persons = next((p for p in rel.parts if p.startswith("persons-")), "")
        rows.append({
            "fold": fold.removeprefix("fold-") or "-", "variant": s["variant"],
            "persons": persons.removeprefix("persons-") or "all", "epochs": s.get("epochs_run"),
            "best epoch": s.get("best_epoch"), "best val Dice": s.get("best_val_dice"),
            "test Dice >0.5": s.get("test_dice_05"), "test Dice >0.999": s.get("test_dice"),
            "baseline test >0.999": s.get("baseline_test_dice"), "train slices/s": s.get("train_slices_per_s"),
            "seconds": s.get("seconds"),
        })
    return pd.DataFrame(rows) if rows else None


def _figures(run: Path, pattern: str, caption=None) -> list[dict]:
    return [{"src": str(p.relative_to(run)), "caption": caption(p) if caption else str(p.relative_to(run))}
            for p in sorted(run.glob(pattern))]


def write_report(run: str | os.PathLike, *, params_file: str | os.PathLike | None = None, params: dict | None = None,
                 seconds: float | None = None) -> Path:
    """Write ``<run>/index.html`` from what the notebooks left in the run folder; returns its path."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    run = Path(run)
    evaluation = run / "evaluation"
    results = json.loads((evaluation / "results.json").read_text()) if (evaluation / "results.json").is_file() else {}
    pre = json.loads((run / "preprocess" / "preprocess.json").read_text()) if (
        run / "preprocess" / "preprocess.json").is_file() else {}
    shift = results.get("shift") or (pre.get("shift") or {}).get("label")

    headline_frame = _csv(evaluation / "headline.csv")
    headline = headline_note = ""
    if headline_frame is not None and len(headline_frame):
        shown = headline_frame.rename(columns={
            "mean": "mean Dice", "ci_low": "95% CI low", "ci_high": "95% CI high", "mean_diff": "vs baseline",
            "diff_ci_low": "diff CI low", "diff_ci_high": "diff CI high", "p_holm": "p (Holm)"})
        headline = _table(shown, classes="headline")
        n = int(headline_frame["n_persons"].max())
        folds = results.get("folds") or 0
        headline_note = (
            f"Scan-level Dice on the labelled slices of {n} held-out person(s)"
            + (f", pooled over {folds} cross-validation folds (every person tested once, by the models of its fold)"
               if folds else "")
            + ". Intervals: person bootstrap, 95%; given with at least 3 persons. "
            + ("" if n >= 3 else "Too few persons for an interval or a test: the numbers show the pipeline works, "
               "not whether fine-tuning helps.")
        )

    sections = []
    stats_frame = _csv(evaluation / "stats.csv")
    if stats_frame is not None and len(stats_frame):
        keep = [c for c in ("level", "metric", "model", "n_pairs", "n_persons", "mean_baseline", "mean_model",
                            "mean_diff", "ci_low", "ci_high", "p_value", "p_holm", "significant", "note")
                if c in stats_frame.columns]
        sections.append({"id": "stats", "title": "Paired statistics against the baseline",
                         "text": "Wilcoxon signed-rank (fewer than 6 non-zero pairs: no p-value), person bootstrap "
                                 "CI of the mean difference, Holm's correction per level. Slice-level p-values "
                                 "treat slices as independent and are optimistic.",
                         "tables": [{"title": "", "html": _table(stats_frame[keep])}], "figures": []})
    unc = _csv(evaluation / "uncertainty.csv")
    if unc is not None and len(unc):
        sections.append({"id": "uncertainty", "title": "Uncertainty: does the score find bad slices?",
                         "text": "Per-slice uncertainty score (spread over 9 seeded passes) against Dice: AUROC for "
                                 "slices with Dice < 0.8 (0.5 = chance) and Spearman's rho (negative is good).",
                         "tables": [{"title": "", "html": _table(unc)}],
                         "figures": _figures(run, "evaluation/uncertainty.png")})
    per_fold = _csv(evaluation / "per_fold_dsc.csv")
    if per_fold is not None:
        sections.append({"id": "folds", "title": "Cross-validation: Dice per fold", "text":
                         "Mean scan-level Dice of each fold's held-out persons, and the spread across folds.",
                         "tables": [{"title": "", "html": _table(per_fold)}], "figures": []})
    efficiency = _csv(evaluation / "efficiency.csv")
    if efficiency is not None:
        sections.append({"id": "efficiency", "title": "Data efficiency: held-out Dice vs training persons",
                         "text": "Nested subsets of each fold's training persons; 95% t-intervals across folds.",
                         "tables": [{"title": "", "html": _table(efficiency)}],
                         "figures": _figures(run, "evaluation/efficiency.png")})
    summary_tables = []
    for name, title in (("metrics_summary.csv", "All metrics: descriptive statistics"),
                        ("retest_cv.csv", "Test-retest: coefficient of variation of GM area"),
                        ("retest_cv_pairs.csv", "Test-retest per pair")):
        frame = _csv(evaluation / name)
        if frame is not None and len(frame):
            if name == "metrics_summary.csv":
                frame = frame[frame["level"] == "scan"].drop(columns=["level"])
            summary_tables.append({"title": title, "html": _table(frame)})
    evaluation_figures = [f for f in _figures(run, "evaluation/*.png")
                          if not f["src"].endswith(("efficiency.png", "uncertainty.png"))]
    sections.append({"id": "evaluation", "title": "Evaluation", "text": results.get("scope", ""),
                     "tables": summary_tables, "figures": evaluation_figures})
    training = _training_table(run)
    if training is not None:
        sections.append({"id": "training", "title": "Training runs",
                         "text": "Best weights = best validation Dice (epoch 0 = the starting weights were never "
                                 "beaten). Test Dice at 0.5 and at SCT's 0.999 (the latter hides a partly adapted model).",
                         "tables": [{"title": "", "html": _table(training)}],
                         "figures": _figures(run, "train/**/learning_curve.png",
                                             lambda p: str(p.parent.relative_to(run / "train"))), "grid": True})
    split_table = _csv(run / "data" / "split_table.csv")
    sections.append({"id": "data", "title": "Data and splits", "text": "",
                     "tables": [{"title": "", "html": _table(split_table)}] if split_table is not None else [],
                     "figures": _figures(run, "data/*.png") + _figures(run, "augment/*.png")})
    qc = _figures(run, "preprocess/qc/*.png")
    if qc:
        sections.append({"id": "qc", "title": "Preprocessing QC", "text": f"{len(qc)} montages (window, GM outline).",
                         "tables": [], "figures": qc})

    notebooks = sorted(str(p.relative_to(run)) for p in run.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    tables = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.suffix in (".csv", ".xlsx", ".json", ".md")
                    and "pred" not in p.parts and ".ipynb_checkpoints" not in p.parts)
    devices = sorted({json.loads(p.read_text()).get("device", "") for p in run.glob("train/**/summary.json")})
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
        headline_note=headline_note, sections=sections, notebooks=notebooks, tables=tables, run_facts=facts,
        parameters=_table(pd.DataFrame(param_rows)) if param_rows else "<p>(not recorded)</p>",
    )
    return write_text(page, run / "index.html")
