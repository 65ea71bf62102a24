"""The deliverable model of a study: a variant's fold models packaged as one shareable ensemble.

After cross-validation a variant is k models (``<train>/fold-<k>/<variant>/best.hdf5``), each selected
on its own fold's validation persons. :func:`package_ensemble` copies them (weights, their ``.json``
metadata and ``summary.json`` with the validation-chosen threshold) into one folder,
``<train>/final/<variant>/fold-<k>/``, with the ensemble's model card (:mod:`pedgm_kit.model_card`,
built from the run, so it names the training persons, sites and the data manifest) beside them. The
folder is a model: ``pedgm segment scans/ --model <train>/final/<variant>`` averages the members'
probabilities (:mod:`pedgm_kit.segment.ensemble`). ``pedgm train --params P --final --variant V``
calls it. The folder is written under a temporary name and renamed, so a failed copy leaves nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .exceptions import OutputExistsError, ParameterError

__all__ = ["FINAL_DIR", "package_ensemble"]

FINAL_DIR = "final"
_MEMBER_FILES = ("best.hdf5", "best.json", "summary.json")


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
    if not variant or os.sep in variant or variant in (".", "..", FINAL_DIR):
        raise ParameterError(f"--variant must name a trained variant, got {variant!r}")
    members = ensemble_members(train_dir / variant)
    target = train_dir / FINAL_DIR / variant
    if target.exists() and not overwrite:
        raise OutputExistsError(f"Output exists: '{target}' (pass --overwrite to replace it)")
    card = build_card(train_dir / variant, members=members)
    staging = target.with_name(f".{variant}.part")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for weights in members:
            fold = next(p.name for p in weights.parents if p.name.startswith("fold-"))
            (staging / fold).mkdir(parents=True)
            for name in _MEMBER_FILES:
                if (weights.parent / name).is_file():
                    shutil.copy2(weights.parent / name, staging / fold / name)
        card["packaged_from"] = str(train_dir / variant)
        write_card(staging, card, folder=staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
