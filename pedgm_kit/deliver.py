"""The deliverable model of a study: a variant's fold models packaged as one shareable ensemble.

After cross-validation a variant is k models (``<train>/fold-<k>/<variant>/best.hdf5``), each selected
on its own fold's validation persons. :func:`package_ensemble` copies them (weights, their ``.json``
metadata and ``summary.json`` with the validation-chosen threshold) into one folder,
``<train>/final/<variant>/fold-<k>/``, with the ensemble's model card (:mod:`pedgm_kit.model_card`,
built from the run, so it names the training persons, sites and the data manifest) beside them. The
folder is a model: ``pedgm segment scans/ --model <train>/final/<variant>`` averages the members'
probabilities (:mod:`pedgm_kit.segment.ensemble`). ``pedgm train --params P --final --variant V``
calls it. The folder is written under a temporary name and renamed, so a failed copy leaves nothing.

The other route, ``final: retrain_all`` (the ``pipeline`` section of the parameter file, or ``pedgm
train --final retrain_all``), is :func:`retrain_all`: the variant trained once more, on every person
no fold locked away (the union of the folds' train and validation persons; under cross-validation
that is everyone), with the variant's own settings except two choices, both made without any
held-out person and both written into the model card:

- epochs: the median of the folds' best (validation-selected) epochs, rounded half up; no
  validation persons remain to stop on, so the run trains exactly that many epochs (0: the folds
  never beat their initial weights, and neither is this model trained: the initial weights, adapted
  where the recipe adapts them, are delivered);
- threshold: the variant's rule. A rule fixed by the loss gives the same value as in the folds; a
  threshold chosen on validation cannot be chosen again, so the median of the folds' validation
  choices is used.

The model has no held-out persons of its own: its card gives the variant's cross-validated Dice (the
folds', mean over persons) as the estimate for the recipe, and says so. :func:`deliver` picks the route.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .exceptions import InputFileError, OutputExistsError, ParameterError
from .io import check_choice
from .layout import (
    FINAL_DIR,
    SUMMARY_JSON,
    WEIGHTS_FILE,
    WEIGHTS_JSON,
    RunLayout,
    fold_dir,
    fold_folder,
    fold_of,
    split_arrays,
)
from .schema import FINAL_MODES

__all__ = ["FINAL_DIR", "FINAL_MODES", "deliver", "package_ensemble", "retrain_all"]

_MEMBER_FILES = (WEIGHTS_FILE, WEIGHTS_JSON, SUMMARY_JSON)


def package_ensemble(train_dir: str | os.PathLike, variant: str, *, overwrite: bool = False) -> Path:
    """Copy ``variant``'s fold models under ``train_dir`` into ``<train_dir>/final/<variant>``.

    Parameters
    ----------
    train_dir : path-like
        The run's training folder (``<run>/train``), holding ``fold-<k>/<variant>/``.
    variant : str
        The variant to deliver (e.g. the report's recommendation).
    overwrite : bool, default False
        Replace an existing package.

    Returns
    -------
    pathlib.Path
        The package folder.

    Raises
    ------
    InputFileError
        No fold model of ``variant`` under ``train_dir``.
    OutputExistsError
        The package exists and ``overwrite`` is False.
    """
    from .model_card import build_card, write_card
    from .segment.ensemble import ensemble_members

    train_dir = Path(train_dir)
    _check_variant(variant)
    members = ensemble_members(train_dir / variant)
    target = train_dir / FINAL_DIR / variant
    if target.exists() and not overwrite:
        raise OutputExistsError(f"Output exists: '{target}' (pass --overwrite to replace it)")
    card = build_card(train_dir / variant, members=members)
    card["final"] = {"route": "ensemble", "members": len(members),
                     "how": "the fold models' probabilities averaged, thresholded at the variant's threshold"}
    with _staged(target) as staging:
        for weights in members:
            fold = fold_folder(weights).name
            (staging / fold).mkdir(parents=True)
            for name in _MEMBER_FILES:
                if (weights.parent / name).is_file():
                    shutil.copy2(weights.parent / name, staging / fold / name)
        card["packaged_from"] = str(train_dir / variant)
        write_card(staging, card, folder=staging)
    return target


@contextlib.contextmanager
def _staged(target: Path):
    """A staging folder beside ``target`` (``.<name>.part``), renamed onto it when the block succeeds;
    removed in any case, so a failure leaves nothing and an old deliverable stays until the new one is whole."""
    staging = target.with_name(f".{target.name}.part")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_variant(variant: str) -> None:
    if not variant or os.sep in variant or variant in (".", "..", FINAL_DIR):
        raise ParameterError(f"--variant must name a trained variant, got {variant!r}")


def deliver(train_dir: str | os.PathLike, variant: str, *, final: str = FINAL_MODES[0], overwrite: bool = False,
            data_dir: str | os.PathLike | None = None, verbose: int = 0) -> Path:
    """The deliverable model of ``variant`` in ``<train_dir>/final/<variant>``, by route ``final``.

    ``"ensemble"``: :func:`package_ensemble`; ``"retrain_all"``: :func:`retrain_all` (``data_dir``,
    ``verbose`` are its). Raises :class:`ParameterError` for another route.
    """
    check_choice(final, FINAL_MODES, name="final")
    if final == "ensemble":
        return package_ensemble(train_dir, variant, overwrite=overwrite)
    return retrain_all(train_dir, variant, data_dir=data_dir, overwrite=overwrite, verbose=verbose)


def median_epoch(best_epochs) -> tuple[int, str]:
    """The folds' median best epoch, rounded half up, and the rule in words (None entries refused)."""
    import math

    import numpy as np

    values = [int(e) for e in best_epochs]
    median = float(np.median(values))
    epochs = int(math.floor(median + 0.5))
    return epochs, (f"the median of the folds' best (validation-selected) epochs {', '.join(map(str, values))} = "
                    f"{median:g}, rounded half up: {epochs}; trained exactly that many epochs (no validation "
                    "persons remain to stop on)")


def _fold_records(train_dir: Path, variant: str) -> list[tuple[int, Path, dict]]:
    """(fold, weights, summary) of every fold model of the variant (fold 0: a run without folds)."""
    from .segment.ensemble import ensemble_members
    from .train.records import load_summary

    single = train_dir / variant / WEIGHTS_FILE
    try:
        weights = ensemble_members(train_dir / variant)
    except InputFileError:
        if not single.is_file():
            raise
        weights = [single]
    records = []
    for w in weights:
        if not (w.parent / SUMMARY_JSON).is_file():
            raise InputFileError(f"No such file or no access: '{w.parent / SUMMARY_JSON}' (the training record of "
                                 f"'{w}'; retrain_all reads its settings and best epoch)")
        try:
            summary = load_summary(w.parent)
        except ValueError as err:
            raise InputFileError(f"{w.parent / SUMMARY_JSON}: {err}") from None
        if not isinstance(summary.get("best_epoch"), int) or not summary.get("config"):
            raise InputFileError(f"{w.parent / SUMMARY_JSON}: no best_epoch or config recorded (retrain_all needs both)")
        records.append((fold_of(w) or 0, w, summary))
    return records


def _pooled_arrays(data_dir: Path, folds: list[int]) -> tuple[dict, list[str], list[str]]:
    """Every fold's train then validation windows, each (scan, slice) once; and the persons left out.

    Returns (arrays, persons used, locked persons: the manifest's locked test persons and any test
    person in no fold's train or val). Raises :class:`PedgmError` if a locked person is in the arrays.
    """
    import numpy as np

    from .data_creation import load_split, read_manifest
    from .exceptions import PedgmError
    from .layout import MANIFEST_FILE

    parts, used, tested = [], set(), set()
    for split in ("train", "val"):
        for fold in folds:
            path = split_arrays(fold_dir(data_dir, fold), split)
            if not path.is_file():
                raise InputFileError(f"No such file or no access: '{path}' (the fold's {split} arrays; give the run's "
                                     "data folder: train.data_dir, or --output-dir of a pedgm run's train/)")
            arrays = load_split(path)
            if not {"scan_id", "slice_index", "person_id", "images", "masks"} <= set(arrays):
                raise InputFileError(f"{path}: no scan_id/slice_index/person_id arrays (rebuild it with notebook 02)")
            parts.append(arrays)
    for fold in folds:
        test = split_arrays(fold_dir(data_dir, fold), "test")
        if test.is_file():
            tested |= set(load_split(test)["person_id"].astype(str).tolist())
    seen, keep = set(), []
    for arrays in parts:
        keys = list(zip(arrays["scan_id"].astype(str).tolist(), arrays["slice_index"].tolist()))
        idx = [i for i, key in enumerate(keys) if not (key in seen or seen.add(key))]
        keep.append({k: v[idx] for k, v in arrays.items()})
        used |= set(arrays["person_id"].astype(str).tolist())
    pooled = {k: np.concatenate([a[k] for a in keep]) for k in keep[0]}
    locked = set(tested - used)
    manifest = data_dir.parent / MANIFEST_FILE  # notebook 02's: <run>/data/manifest.json beside <run>/data/data
    if manifest.is_file():
        record = (read_manifest(manifest).get("locked_test") or {})
        declared = {str(p) for p in record.get("persons", [])}
        if declared & used:
            raise PedgmError(f"{manifest}: locked test person(s) {', '.join(sorted(declared & used))} are in the fold "
                             "arrays; retrain_all never trains on locked persons (rebuild the data with notebook 02)")
        locked |= declared
    return pooled, sorted(used), sorted(locked)


def _fit_fixed(config, x, y, *, epochs: int, verbose: int):
    """The variant's model trained ``epochs`` epochs on (x, y), no validation (0: built, not trained)."""
    from .augment import AugmentConfig
    from .train.data import EpochCounter, make_dataset
    from .train.loop import build_for_training, set_determinism, warmup_schedule

    set_determinism(config.seed, deterministic=config.deterministic)
    model = build_for_training(config, tuple(int(n) for n in x.shape[1:]), adapt_on=x)
    if epochs:
        data = make_dataset(x, y, batch_size=config.batch_size, augment=config.augment, seed=config.seed,
                            config=AugmentConfig(**config.augmentation), overlap=not config.deterministic,
                            epochs=(counter := EpochCounter()))
        callbacks = [counter] + ([warmup_schedule(config)] if config.warmup_epochs else [])
        model.fit(data, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    return model


def retrain_all(train_dir: str | os.PathLike, variant: str, *, data_dir: str | os.PathLike | None = None,
                overwrite: bool = False, verbose: int = 0) -> Path:
    """Train ``variant`` once on all non-locked persons; write it to ``<train_dir>/final/<variant>/``.

    See the module docstring for the two choices (epochs, threshold). The settings are those of the
    variant's fold runs (``summary.json``'s ``config``: recipe, learning rate, batch size,
    ``max_slices``, seed ...) with ``epochs`` replaced and early stopping off.

    Parameters
    ----------
    train_dir : path-like
        The run's training folder (``<run>/train``), holding ``fold-<k>/<variant>/`` (or
        ``<variant>/`` for a run without folds).
    variant : str
    data_dir : path-like, optional
        The run's data folder holding ``fold-<k>/{train,val,test}.npz`` (default ``<run>/data/data``).
    overwrite : bool, default False
    verbose : int, default 0
        Keras verbosity.

    Returns
    -------
    pathlib.Path
        ``<train_dir>/final/<variant>``: ``best.hdf5`` + ``best.json``, ``summary.json``, the model
        card. ``pedgm segment --model`` uses it as one model.

    Raises
    ------
    InputFileError
        No fold model, training record or fold arrays.
    OutputExistsError
        The deliverable exists and ``overwrite`` is False.
    """
    import tempfile
    import time
    from dataclasses import asdict

    from .data_creation import save_npz
    from .layout import TrainSummary
    from .model import save_legacy_weights
    from .model_card import build_card, cv_dice, write_card
    from .segment.ensemble import ensemble_threshold
    from .train.config import TrainConfig, a_priori_threshold
    from .train.data import load_arrays
    from .weights import read_metadata, weights_path

    train_dir = Path(train_dir)
    _check_variant(variant)
    records = _fold_records(train_dir, variant)
    target = train_dir / FINAL_DIR / variant
    if target.exists() and not overwrite:
        raise OutputExistsError(f"Output exists: '{target}' (pass --overwrite to replace it)")
    data_dir = Path(data_dir) if data_dir else RunLayout(train_dir.parent).arrays
    epochs, epochs_rule = median_epoch(s["best_epoch"] for _, _, s in records)
    settings = {k: v for k, v in records[0][2]["config"].items() if k in TrainConfig.names()}
    warmup = min(int(settings.get("warmup_epochs", 0) or 0), max(epochs - 1, 0))
    config = TrainConfig(**{**settings, "epochs": max(epochs, 1), "sweep": True, "train_persons": 0,
                            "warmup_epochs": warmup})
    init = read_metadata(weights_path(config.init_weights))
    if config.threshold == "loss":
        threshold, threshold_rule = a_priori_threshold(config.loss, float(init["threshold"]))
    else:
        value, how = ensemble_threshold([w for _, w, _ in records])
        threshold, threshold_rule = value, (f"no validation persons remain to choose it on: {how}, each chosen on its "
                                            "fold's validation persons")
    pooled, persons, locked = _pooled_arrays(data_dir, [fold for fold, _, _ in records])
    with _staged(target) as staging:
        with tempfile.TemporaryDirectory() as tmp:
            save_npz(pooled, split_arrays(tmp, "train"))
            x, y = load_arrays(tmp, "train", max_slices=config.max_slices, seed=config.seed)
        start = time.perf_counter()
        model = _fit_fixed(config, x, y, epochs=epochs, verbose=verbose)
        seconds = time.perf_counter() - start
        staging.mkdir(parents=True)
        final = {"route": "retrain_all", "epochs": epochs, "epochs_rule": epochs_rule,
                 "fold_best_epochs": [s["best_epoch"] for _, _, s in records],
                 "folds": [fold for fold, _, _ in records], "threshold_rule": threshold_rule,
                 "persons": persons, "locked_persons": locked, "n_slices": int(len(x)),
                 "data_dir": str(data_dir), "how": ("the variant's settings retrained once on every non-locked "
                                                    "person (the folds' train and validation persons)")}
        metadata = {k: init[k] for k in ("mean_train", "std_train") if k in init}
        metadata.update({"variant": variant, "init_weights": config.init_weights if config.pretrained else None,
                         "input_size": int(x.shape[1]), "threshold": float(threshold),
                         "threshold_rule": threshold_rule, "epoch": epochs, "final": "retrain_all"})
        save_legacy_weights(model, staging / WEIGHTS_FILE, metadata=metadata)
        TrainSummary.new({"variant": variant, "config": {**asdict(config), "epochs": epochs}, "train_persons": persons,
                          "epochs_run": epochs, "threshold": float(threshold), "threshold_rule": threshold_rule,
                          "seconds": round(seconds, 2), "final": final}).write(staging / SUMMARY_JSON)
        card = build_card(staging / WEIGHTS_FILE)
        cv_mean, cv_persons = cv_dice([s for _, _, s in records])
        card["final"] = final
        card["results"]["cv"] = {
            "test_dice_mean": cv_mean, "n_persons": cv_persons, "n_folds": len(records),
            "note": ("this model has no held-out persons of its own (it trained on all of them): the variant's "
                     "cross-validated Dice -- each fold model on its test persons, mean over persons -- estimates "
                     "the recipe, not these weights")}
        write_card(staging / WEIGHTS_FILE, _repoint(card, staging, target))
    return target


def _repoint(card: dict, old: Path, new: Path) -> dict:
    """The card with every path under ``old`` (the staging folder) moved to ``new``."""
    import json

    return json.loads(json.dumps(card).replace(json.dumps(str(old))[1:-1], json.dumps(str(new))[1:-1]))
