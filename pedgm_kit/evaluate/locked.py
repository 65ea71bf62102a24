"""The locked test set, scored once after every choice, by each variant's final model.

Notebook 02 holds the persons of ``data: locked_test_persons`` out of every fold
(:func:`pedgm_kit.splits.hold_out_locked`) and records them in ``manifest.json`` (``locked_test``).
Nothing is chosen on them: no recipe, threshold, epoch or early stop. At the end, notebook 05 scores
them with :func:`score_locked_test`:

- each model's *final* model (:func:`final_models`): under cross-validation a variant is the ensemble of
  its fold models (:mod:`pedgm_kit.segment.ensemble`; the package of ``pedgm train --final`` when it
  exists), without cross-validation its one trained model; the pretrained built-ins as they are;
- the one scoring path of every reported test number (:func:`pedgm_kit.evaluate.scoring.score_test_scans`,
  whole scans, each model's own threshold, persons as the unit) and the measured interval rule
  (:func:`pedgm_kit.stats.headline_table`, :func:`pedgm_kit.stats.paired_comparison`);
- written to ``<output_dir>/evaluation/`` (:data:`LOCKED_FILES`), which the run report shows in its own
  section (:func:`report_section`). Every scoring is appended to the record's ``history`` with the
  sha256 of the weights used, so a locked set scored again after a change is visible as such.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..exceptions import ParameterError
from ..io import write_json
from ..layout import FINAL_DIR, FOLD_PLACEHOLDER, RunLayout
from ..registry import BUILTIN_MODELS

__all__ = ["LOCKED_FILES", "LOCKED_TITLE", "final_models", "read_locked", "report_section", "score_locked_test"]

LOCKED_TITLE = "Locked test set: scored once, after every choice"

#: Files of the locked test set in ``<output_dir>/evaluation/``.
LOCKED_FILES: dict[str, str] = {
    "record": "locked_test.json", "headline": "locked_test.csv", "stats": "locked_test_stats.csv",
    "tidy": "locked_test_tidy.csv", "pred": "locked_test",
}


def read_locked(split_manifest: str | os.PathLike | None) -> dict | None:
    """The ``locked_test`` record of notebook 02's manifest, or None (no manifest, nothing locked)."""
    if not split_manifest or not Path(split_manifest).is_file():
        return None
    from ..data_creation import read_manifest

    record = read_manifest(split_manifest).get("locked_test")
    return record if isinstance(record, dict) and record.get("persons") else None


def _ensemble_of(template: str) -> str:
    """The fold ensemble of a fold-templated weights path ``<train>/fold-{fold}/<variant>/best.hdf5``."""
    parts = Path(template).parts
    at = [i for i, p in enumerate(parts) if FOLD_PLACEHOLDER in p]
    if len(at) != 1 or at[0] + 2 >= len(parts) or not parts[at[0]].endswith(FOLD_PLACEHOLDER):
        raise ParameterError(f"model {template!r}: no fold ensemble can be formed from it (expected "
                             f"<train>/fold-{FOLD_PLACEHOLDER}/<variant>/best.hdf5)")
    train, variant = Path(*parts[: at[0]]) if at[0] else Path("."), parts[at[0] + 1]
    packaged = train / FINAL_DIR / variant  # `pedgm train --final`: the same members, copied
    return str(packaged if packaged.is_dir() else train / variant)


def final_models(models: Mapping[str, str], *, folds: int = 0) -> dict[str, str]:
    """``{label: final model}``: fold templates become their fold ensemble, other models stay.

    Parameters
    ----------
    models : mapping
        Notebook 05's ``{label: spec}``; a spec with ``{fold}`` is a variant trained per fold.
    folds : int, default 0
        Folds of the evaluation; the ensemble must have one member per fold.

    Raises
    ------
    ParameterError
        A fold template that is not a training run's weights path, or whose ensemble does not have
        one member per fold.
    """
    from ..segment.ensemble import ensemble_members, is_ensemble

    out = {}
    for label, spec in models.items():
        spec = str(spec)
        if spec in BUILTIN_MODELS or FOLD_PLACEHOLDER not in spec:
            out[label] = spec
            continue
        ensemble = _ensemble_of(spec)
        if not is_ensemble(ensemble):  # `final: retrain_all`: one model retrained on every non-locked person
            out[label] = ensemble
            continue
        members = ensemble_members(ensemble)
        if folds and len(members) != folds:
            raise ParameterError(f"model {label!r}: its final ensemble {ensemble} has {len(members)} fold model(s), "
                                 f"the evaluation {folds} folds")
        out[label] = ensemble
    return out


def _weights_digest(spec: str) -> list[str]:
    from ..registry import sha256sum
    from ..segment.ensemble import ensemble_members, is_ensemble

    if spec in BUILTIN_MODELS:
        return [spec]
    files = ensemble_members(spec) if is_ensemble(spec) else [Path(spec)]
    return [sha256sum(f) if Path(f).is_file() else str(f) for f in files]


def score_locked_test(index, models: Mapping[str, str], *, locked: Mapping, baseline: str,
                      output_dir: str | os.PathLike, folds: int = 0, seed: int = 0, n_boot: int = 2000,
                      cord_scale=None, progress: bool = False) -> dict:
    """Score the locked persons once with each model's final model; write and return the record.

    Parameters
    ----------
    index : pedgm_kit.datasets.DatasetIndex
        The evaluation's scans (notebook 05's index); every locked scan must be a labelled scan of it.
    models : mapping
        Notebook 05's ``{label: spec}`` (:func:`final_models` turns them into final models).
    locked : mapping
        The manifest's ``locked_test`` record (``persons``, ``scans``; :func:`read_locked`).
    baseline : str
        Label of the baseline model.
    output_dir : path-like
        The evaluation folder; the files of :data:`LOCKED_FILES` are written there.
    folds, seed, n_boot, cord_scale
        As the evaluation's.

    Returns
    -------
    dict
        The record written to ``locked_test.json``: persons, scans, the final models, the headline
        rows, the verdicts, the interval notes and the ``history`` of scorings.
    """
    from ..stats import headline_table, paired_comparison
    from .scoring import TEST_SCORING, score_test_scans

    output_dir = Path(output_dir)
    final = final_models(models, folds=folds)
    if baseline not in final:
        raise ParameterError(f"baseline {baseline!r} is not one of the models {list(final)}")
    by_id = {s.scan_id: s for s in index.scans}
    absent = [s for s in locked["scans"] if s not in by_id]
    if absent:
        raise ParameterError(f"locked test scan(s) {absent} are not labelled scans of the evaluated dataset")
    tidy = score_test_scans(final, [by_id[s] for s in locked["scans"]], output_dir=output_dir / LOCKED_FILES["pred"],
                            seed=seed, cord_scale=cord_scale, progress=progress)
    stats = paired_comparison(tidy, baseline=baseline, metrics=["DSC"], level="scan", n_boot=n_boot, seed=seed)
    headline = headline_table(tidy, baseline=baseline, n_boot=n_boot, seed=seed, tests=stats)
    tidy.drop(columns=[c for c in ("fold",) if c in tidy.columns]).to_csv(output_dir / LOCKED_FILES["tidy"], index=False)
    stats.to_csv(output_dir / LOCKED_FILES["stats"], index=False)
    headline.to_csv(output_dir / LOCKED_FILES["headline"], index=False)
    path = output_dir / LOCKED_FILES["record"]
    history = []
    if path.is_file():
        try:
            history = list(json.loads(path.read_text(encoding="utf-8")).get("history", []))
        except (OSError, ValueError, AttributeError):
            history = []
    weights = {label: _weights_digest(spec) for label, spec in final.items()}
    history.append({"scored_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "weights_sha256": weights})
    record = {
        "title": LOCKED_TITLE, "persons": list(locked["persons"]), "scans": list(locked["scans"]),
        "rule": locked.get("rule", ""), "scoring": TEST_SCORING, "baseline": baseline, "final_models": final,
        "headline": headline.to_dict(orient="records"),
        "verdicts": [str(v) for v in stats["verdict"].dropna()] if "verdict" in stats else [],
        "history": history,
        "scored_again_with_other_weights": len({json.dumps(h["weights_sha256"], sort_keys=True) for h in history}) > 1,
    }
    write_json(record, path)
    return record


def report_section(run: str | os.PathLike) -> dict | None:
    """The run report's section on the locked test set (:mod:`pedgm_kit.report`), or None without one; its
    tables are ``{"title", "frame", "csv", "links"}`` records that the report folds."""
    layout = RunLayout(run)
    path = layout.evaluation / LOCKED_FILES["record"]
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    headline = layout.evaluation / LOCKED_FILES["headline"]
    frame = pd.read_csv(headline) if headline.is_file() else pd.DataFrame(record.get("headline", []))
    keep = [c for c in ("model", "n_persons", "n_scans", "failed_scans", "mean", "ci_low", "ci_high", "ci_method",
                        "mean_diff", "diff_ci_low", "diff_ci_high", "interval_note") if c in frame.columns]
    def shown(spec: str) -> str:  # a model inside the run: its path relative to the run folder
        inside = Path(spec).is_absolute() and Path(spec).is_relative_to(layout.root.resolve())
        return Path(spec).relative_to(layout.root.resolve()).as_posix() if inside else spec

    models = ", ".join(f"{k}: {shown(str(v))}" for k, v in record.get("final_models", {}).items())
    text = (f"{len(record.get('persons', []))} person(s) ({', '.join(record.get('persons', []))}; "
            f"{len(record.get('scans', []))} scan(s)) were {record.get('rule') or 'held out before any split'}. "
            f"Final models: {models}. {record.get('scoring', '')} "
            + " ".join(record.get("verdicts", [])))
    if record.get("scored_again_with_other_weights"):
        text += (f" WARNING: this locked set was scored {len(record['history'])} times with different weights: "
                 "it no longer estimates performance after every choice.")
    return {"id": "locked-test", "title": LOCKED_TITLE, "text": text,
            "tables": [{"title": "Dice on the locked persons", "frame": frame[keep], "csv": headline,
                        "links": (layout.evaluation / LOCKED_FILES["stats"],)}],
            "figures": []}
