"""Model cards: what a model was trained on, how, and how well, travelling with its weights.

A card is two files beside the weights: ``model_card.json`` (machine) and ``model_card.md``
(human). It records, as far as the run folder tells:

- the model: kind (``single`` ``.hdf5``, ``onnx`` export, fold ``ensemble``), weights files and their
  sha256, the toolkit version;
- training: persons (count, ids) and sites (count, names: ``participants.tsv``'s ``Site`` of the
  training scans' dataset), recipe and parameters (the run's ``summary.json`` ``config``);
- the threshold and how it was chosen (``threshold_rule``);
- results: the validation Dice that selected the epoch; the held-out test Dice per fold, and over
  all folds the mean over persons (each person's Dice from the fold that tested them, the toolkit's
  one per-person aggregation, :func:`pedgm_kit.evaluate.scoring.mean_over_persons`; not a mean of
  fold means, which would weight a person by their fold's size). No interval is printed: an interval is shown only where its coverage was measured (the run's
  report has the per-person comparisons);
- the sha256 of the data manifest (``<run>/data/manifest.json``);
- ``SIMULATED`` when the training data was a simulated shift (``simulated-*`` preprocessing).

:func:`build_card` reads a model's files (a ``.hdf5`` / ``.onnx`` in a variant folder of a run,
or a variant folder of folds, see :mod:`pedgm_kit.segment.ensemble`); :func:`write_card` writes it;
:func:`read_card` finds it (or None); :func:`card_for` builds it when missing, so older run folders
get one lazily; :func:`summary_line` is the one line ``pedgm segment --model`` prints.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from . import __version__
from .exceptions import InputFileError, OutputExistsError
from .io import write_json, write_text
from .layout import SCANS_FILE, SIMULATED_PREFIX, SUMMARY_JSON, TRAIN_DIR, WEIGHTS_FILE, RunLayout, fold_of

__all__ = ["CARD_JSON", "CARD_MD", "SCHEMA", "build_card", "card_for", "card_paths", "card_markdown", "cv_dice", "export_card", "read_card",
           "summary_line", "write_card", "write_training_card"]

CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
_WEIGHTS_SUFFIXES = (".hdf5", ".h5", ".onnx")
SCHEMA = 1


def _sha256(path: Path) -> str:
    from .registry import sha256sum

    return sha256sum(path)


def _run_root(folder: Path) -> Path | None:
    """The run folder above a variant folder (``<run>/train/[fold-k/]<variant>``), or None."""
    for parent in [folder, *folder.parents]:
        if parent.name == TRAIN_DIR and parent.parent != parent:
            return parent.parent
    return None


def _summary(folder: Path) -> dict:
    path = folder / SUMMARY_JSON
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}


def _sites(run: Path | None, persons: list[str]) -> list[str]:
    """Sites of the persons, from ``participants.tsv`` of the dataset the run's scans came from."""
    if run is None or not persons:
        return []
    import pandas as pd

    from .data_creation import read_scans

    sources = []
    for scans_json in sorted(RunLayout(run).data.rglob(SCANS_FILE)):
        sources += [r.get("source_image") for r in (read_scans(scans_json.parent) or []) if r.get("source_image")]
    tables = {}
    for source in sources:
        for parent in Path(source).parents:
            if (parent / "participants.tsv").is_file():
                tables.setdefault(parent, pd.read_csv(parent / "participants.tsv", sep="\t", dtype=str))
                break
    wanted = set(persons)
    sites = set()
    for table in tables.values():
        column = next((c for c in table.columns if c.lower() == "site"), None)
        if column is None:
            continue
        for pid, site in zip(table["participant_id"], table[column]):
            folded = re.sub(r"Ses\d+$", "", str(pid))
            if pid in wanted or folded in wanted:
                sites.add(str(site))
    return sorted(sites)


def _simulated(run: Path | None, summary: dict) -> str | None:
    """What was simulated, or None."""
    if run is not None:
        pre = RunLayout(run).preprocess
        notes = sorted(pre.glob(f"{SIMULATED_PREFIX}*/SIMULATED.txt")) if pre.is_dir() else []
        if notes:
            return notes[0].read_text(encoding="utf-8").strip().splitlines()[0] or notes[0].parent.name
        sims = sorted(pre.glob(f"{SIMULATED_PREFIX}*")) if pre.is_dir() else []
        if sims:
            return sims[0].name
    text = json.dumps(summary.get("config", {}))
    return "simulated data in the training configuration" if "simulated" in text.lower() else None


def build_card(model: str | os.PathLike, *, members: list[str | os.PathLike] | None = None) -> dict:
    """A model's card from its files and its run folder.

    Parameters
    ----------
    model : path-like
        A ``.hdf5`` or ``.onnx`` weights file, or a variant folder of fold models (an ensemble).
    members : list of path-like, optional
        The ensemble's member weights (default: ``fold-*/<variant>/best.hdf5`` for a variant folder;
        see :func:`pedgm_kit.segment.ensemble.ensemble_members`).

    Returns
    -------
    dict
        The card (keys in the module docstring; ``schema`` :data:`SCHEMA`).

    Raises
    ------
    InputFileError
        The model does not exist.
    """
    from .segment.ensemble import ensemble_members, is_ensemble

    from .registry import BUILTIN_MODELS

    path = Path(model)
    if str(model) in BUILTIN_MODELS:
        from .weights import weights_path

        path = weights_path(str(model))
        weights, kind = [path], "single"
    elif members is not None or is_ensemble(path):
        weights = [Path(m) for m in (members or ensemble_members(path))]
        kind = "ensemble"
    elif path.is_dir() and (path / WEIGHTS_FILE).is_file():
        weights, kind = [path / WEIGHTS_FILE], "single"
    elif path.is_file():
        weights = [path]
        kind = "onnx" if path.suffix == ".onnx" else "single"
    else:
        raise InputFileError(f"No such file or no access: '{path}' (model: a weights file or a variant of folds)")
    summaries = [_summary(w.parent) for w in weights]
    run = _run_root(weights[0].parent)
    persons = sorted({p for s in summaries for p in (s.get("train_persons") or [])})
    meta = {}
    meta_path = weights[0].with_suffix(".json")
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = {}
    if kind == "ensemble":
        from .segment.ensemble import ensemble_threshold

        threshold, rule = ensemble_threshold(weights)
    else:
        first = summaries[0]
        threshold = first.get("threshold", meta.get("threshold"))
        rule = first.get("threshold_rule") or meta.get("threshold_rule") or "from the weights' metadata (.json)"
    folds = []
    for w, s in zip(weights, summaries):
        fold = None if fold_of(w) is None else str(fold_of(w))
        folds.append({"fold": fold, "weights": str(w), "test_dice": s.get("test_dice"),
                      "test_persons": s.get("test_persons", []), "best_val_dice": s.get("best_val_dice"),
                      "best_epoch": s.get("best_epoch")})
    test = [f["test_dice"] for f in folds if isinstance(f["test_dice"], (int, float))]
    cv_mean, cv_persons = cv_dice(summaries)
    manifest = RunLayout(run).manifest if run is not None else None
    simulated = _simulated(run, summaries[0])
    config = summaries[0].get("config", {})
    builtin = str(model) in BUILTIN_MODELS
    return {
        "schema": SCHEMA,
        "name": str(model) if builtin else path.name if kind == "ensemble" else (summaries[0].get("variant") or path.stem),
        "origin": ("SCT's pretrained sct_deepseg_gm weights (not trained by pedgm_kit: no training record here)"
                   if builtin else "pedgm_kit training run" if summaries[0] else "weights without a training record"),
        "kind": kind,
        "model": str(path),
        "toolkit": {"name": "pedgm_kit", "version": __version__},
        "weights": [{"path": str(w), "sha256": _sha256(w) if w.is_file() else None} for w in weights],
        "same_weights_as": [{"path": str(o), "sha256": _sha256(o)} for w in weights  # training's ONNX copy
                            for o in [w.with_suffix(".onnx")] if w.suffix != ".onnx" and o.is_file()],
        "training": {
            "variant": summaries[0].get("variant"),
            "recipe": config.get("recipe") or ("pretrained" if config.get("pretrained") else "scratch" if config else None),
            "parameters": config,
            "persons": {"count": len(persons), "ids": persons},
            "sites": (lambda s: {"count": len(s), "names": s})(_sites(run, persons)),
            "init_weights": meta.get("init_weights"),
        },
        "threshold": {"value": threshold, "how": rule},
        "results": {
            "folds": folds,
            "test_dice_mean": cv_mean,
            "n_folds_scored": len(test),
            "n_persons_scored": cv_persons,
            "interval": None,
            "note": ("test Dice: each fold model on the persons it was not trained on, each person's Dice the mean over "
                     "their scans, then the mean over all folds' test persons (not a mean of fold means); no interval "
                     "is given here (coverage not measured for this summary; see the run report)"),
        },
        "data_manifest": ({"path": str(manifest), "sha256": _sha256(manifest)} if manifest and manifest.is_file()
                          else None),
        "simulated": simulated,
    }


def cv_dice(summaries: list[dict]) -> tuple[float | None, int]:
    """(mean over persons of the folds' held-out Dice, number of persons).

    Each summary's ``test_dice_per_person`` (person -> mean over their scans) feeds
    :func:`~pedgm_kit.evaluate.scoring.mean_over_persons`; a summary written before per-person values
    were recorded counts its ``test_dice`` once per test person (the same mean over persons).
    """
    import pandas as pd

    from .evaluate.scoring import mean_over_persons

    rows = []
    for k, s in enumerate(summaries):
        per = s.get("test_dice_per_person")
        if isinstance(per, dict) and per:
            rows += [(person, value) for person, value in per.items() if isinstance(value, (int, float))]
        elif isinstance(s.get("test_dice"), (int, float)):
            rows += [(f"fold {k} person {person}", s["test_dice"]) for person in (s.get("test_persons") or ["?"])]
    if not rows:
        return None, 0
    tidy = pd.DataFrame([{"model": "m", "scan": person, "person": person, "level": "scan", "slice": pd.NA,
                          "metric": "DSC", "value": float(value)} for person, value in rows])
    return mean_over_persons(tidy)["m"], int(tidy["person"].nunique())


def summary_line(card: dict) -> str:
    """One line: name, kind, persons/sites, threshold, test Dice, SIMULATED."""
    t = card["training"]
    dice = card["results"]["test_dice_mean"]
    cv = card["results"].get("cv") or {}
    retrained = (card.get("final") or {}).get("route") == "retrain_all"
    parts = [f"{card['name']} ({card['kind']}"
             + (f", {len(card['weights'])} folds" if card["kind"] == "ensemble" else "")
             + (", retrained on all persons" if retrained else "") + ")",
             f"trained on {t['persons']['count']} persons" + (f" / {t['sites']['count']} sites" if t["sites"]["count"] else ""),
             f"threshold {card['threshold']['value']}",
             f"test Dice {dice:.3f}" if dice is not None else
             f"CV Dice of the recipe {cv['test_dice_mean']:.3f} (no held-out persons of its own)"
             if cv.get("test_dice_mean") is not None else "test Dice n/a",
             f"pedgm_kit {card['toolkit']['version']}"]
    line = ", ".join(parts)
    return ("SIMULATED training data: " + line) if card.get("simulated") else line


def card_markdown(card: dict) -> str:
    """The human card (Markdown)."""
    t, r = card["training"], card["results"]
    lines = [f"# Model card: {card['name']}", ""]
    if card.get("simulated"):
        lines += [f"**SIMULATED**: trained on simulated data ({card['simulated']}).", ""]
    lines += [
        f"- origin: {card.get('origin', '')}",
        f"- kind: {card['kind']} ({len(card['weights'])} weights file(s)); pedgm_kit {card['toolkit']['version']}",
        f"- training persons ({t['persons']['count']}): {', '.join(t['persons']['ids']) or 'not recorded'}",
        f"- sites ({t['sites']['count']}): {', '.join(t['sites']['names']) or 'not recorded'}",
        f"- variant / recipe: {t['variant']} / {t['recipe']}; initial weights: {t['init_weights']}",
        f"- threshold: {card['threshold']['value']} ({card['threshold']['how']})",
        f"- held-out test Dice (mean over {r.get('n_persons_scored', '?')} persons of {r['n_folds_scored']} fold(s)): "
        + (f"{r['test_dice_mean']:.4f}" if r["test_dice_mean"] is not None else "not recorded"),
        f"- {r['note']}",
    ]
    final = card.get("final") or {}
    if final.get("route") == "retrain_all":
        cv = r.get("cv") or {}
        lines += [
            f"- deliverable: retrained once on all {len(final.get('persons', []))} non-locked persons "
            f"(locked away: {', '.join(final.get('locked_persons', [])) or 'none'}); {final.get('n_slices')} slices",
            f"- epochs: {final.get('epochs')} ({final.get('epochs_rule')})",
            f"- threshold rule: {final.get('threshold_rule')}",
            "- cross-validated Dice of the recipe (its folds, mean over "
            f"{cv.get('n_persons')} persons): "
            + (f"{cv['test_dice_mean']:.4f}" if cv.get("test_dice_mean") is not None else "not recorded")
            + f" -- {cv.get('note', '')}",
        ]
    elif final.get("route") == "ensemble":
        lines += [f"- deliverable: the {final.get('members')} fold models as one ensemble ({final.get('how')})"]
    lines += [
        "- data manifest: " + (f"`{card['data_manifest']['path']}` sha256 {card['data_manifest']['sha256']}"
                               if card["data_manifest"] else "not found"),
        "",
        "| fold | test Dice | test persons | best val Dice | best epoch |",
        "|---|---|---|---|---|",
    ]
    for f in r["folds"]:
        dice = f"{f['test_dice']:.4f}" if isinstance(f["test_dice"], (int, float)) else ""
        val = f"{f['best_val_dice']:.4f}" if isinstance(f["best_val_dice"], (int, float)) else ""
        lines.append(f"| {f['fold'] or '-'} | {dice} | {', '.join(f['test_persons'])} | {val} | {f['best_epoch']} |")
    lines += ["", "## Weights", ""] + [f"- `{w['path']}` sha256 {w['sha256']}" for w in card["weights"]]
    lines += [f"- same weights as ONNX: `{w['path']}` sha256 {w['sha256']}" for w in card.get("same_weights_as", [])]
    lines += ["", "## Training parameters", "", "```json", json.dumps(t["parameters"], indent=1, sort_keys=True), "```", ""]
    return "\n".join(lines)


def _card_dir(model: str | os.PathLike) -> Path:
    """Where a model's card lives: the variant folder of an ensemble (created when written), the
    folder of a weights file, or the folder given."""
    from .segment.ensemble import is_ensemble

    path = Path(model)
    return path if path.is_dir() or is_ensemble(path) else path.parent


def card_paths(model: str | os.PathLike) -> tuple[Path, Path]:
    """Where a model's card is written: ``model_card.json``/``.md`` in a variant folder (and beside a
    run's ``best.hdf5``); ``<stem>_model_card.json``/``.md`` beside any other weights file (exports)."""
    path = Path(model)
    if path.suffix in _WEIGHTS_SUFFIXES:  # a weights file, existing or about to be written
        if path.stem == "best":
            return path.with_name(CARD_JSON), path.with_name(CARD_MD)
        return path.with_name(f"{path.stem}_{CARD_JSON}"), path.with_name(f"{path.stem}_{CARD_MD}")
    where = _card_dir(model)
    return where / CARD_JSON, where / CARD_MD


def read_card(model: str | os.PathLike) -> dict | None:
    """The card of a model (:func:`card_paths`, then ``model_card.json`` in its folder), or None."""
    candidates = [card_paths(model)[0], _card_dir(model) / CARD_JSON]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"Cannot read model card '{path}': {err}") from None
    return card if isinstance(card, dict) and card.get("schema") == SCHEMA else None


def write_card(model: str | os.PathLike, card: dict | None = None, *, folder: str | os.PathLike | None = None,
               overwrite: bool = True) -> tuple[Path, Path]:
    """Write ``model_card.json`` and ``model_card.md`` beside ``model`` (or into ``folder``), atomically.

    Raises
    ------
    OutputExistsError
        A card exists there and ``overwrite`` is False.
    """
    card = card or build_card(model)
    targets = card_paths(model) if folder is None else (Path(folder) / CARD_JSON, Path(folder) / CARD_MD)
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        for target in targets:
            if target.exists():
                raise OutputExistsError(f"Output exists: '{target}' (pass --overwrite to replace it)")
    write_json(card, targets[0])
    write_text(card_markdown(card), targets[1])
    return targets


def export_card(source: str | os.PathLike, target: str | os.PathLike) -> dict:
    """The card of an exported copy (``pedgm export``): the source's card, re-pointed at ``target``.

    ``kind`` becomes ``onnx`` for an ONNX file; the weights entry is the exported file and its
    sha256, ``exported_from`` the source and its card's weights.
    """
    card, _ = card_for(source)
    target = Path(target)
    return {**card, "kind": "onnx" if target.suffix == ".onnx" else card["kind"], "model": str(target),
            "weights": [{"path": str(target), "sha256": _sha256(target)}],
            "exported_from": {"model": str(source), "weights": card["weights"]}}


def write_training_card(folder: str | os.PathLike) -> tuple[Path, Path] | None:
    """The card of a variant folder just trained (``best.hdf5`` + ``summary.json``), written beside it.

    Called at the end of :func:`pedgm_kit.train.train_variant`; a card that cannot be built (an
    unreadable record) is a warning, never a failed training. Returns the two paths, or None.
    """
    import warnings

    from .exceptions import PedgmError

    try:
        return write_card(Path(folder) / WEIGHTS_FILE)
    except (PedgmError, OSError, ValueError, KeyError) as err:
        warnings.warn(f"{folder}: model card not written ({err}); `pedgm model-card --write` builds it later",
                      stacklevel=2)
        return None


def card_for(model: str | os.PathLike, *, write: bool = False) -> tuple[dict, bool]:
    """The model's card: read when present, else built from its files (and written if ``write``).

    Returns (card, found): ``found`` is False when the card was built now.
    """
    card = read_card(model)
    if card is not None:
        return card, True
    card = build_card(model)
    if write:
        try:
            write_card(model, card)
        except OSError:  # a read-only model folder: the card is still shown
            pass
    return card, False
