"""Which model to use after the study: a stated rule applied to the per-person held-out Dice.

The rule (the report prints it with the numbers it used):

1. Every model's Dice is averaged per person first (each person's held-out scans, the same scans for
   every model); the trained variants are ranked by their mean over persons.
2. The best variant is compared with the runner-up on the per-person paired differences. It is
   chosen only when the 95% interval of that difference (the interval the coverage benchmark
   measured to hold for this many persons, :func:`~pedgm_kit.stats.intervals.person_interval`)
   lies above 0; otherwise -- an interval that includes 0, or too few persons for any interval --
   the simpler of the two is chosen (:data:`SIMPLER_FIRST`).
3. The chosen variant is then compared with the best baseline (a network used as shipped) the same
   way: when that interval does not lie above 0 there is no evidence that fine-tuning helped, and
   the baseline is recommended.

The recommendation names the command that uses the model: for a cross-validation run the variant
folder, i.e. the ensemble of its fold models (:mod:`pedgm_kit.segment.ensemble`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..layout import FOLD_PLACEHOLDER, fold_dir, fold_folder
from .compare import _failed_persons, person_means
from .intervals import person_interval

__all__ = ["SIMPLER_FIRST", "recommend"]

SIMPLER_FIRST: tuple[str, ...] = ("pretrained_noaug", "pretrained_adapted", "pretrained_aug", "scratch_noaug",
                                  "scratch_aug")
"""Variants from the simplest/cheapest: a pretrained start before training from scratch (fewer epochs
to converge), the study's Dice loss before the adapted Dice + BCE recipe, no augmentation before
on-the-fly augmentation."""

RULE = ("the variant with the best mean per-person Dice, unless the 95% interval of its per-person "
        "difference to the runner-up includes 0 (then the simpler of the two); then that variant only if "
        "the interval of its difference to the best baseline lies above 0 (else the baseline). The choice is "
        "made on the same held-out persons whose Dice the report shows, so the chosen model's score is "
        "optimistic; persons locked away from every choice measure it without that bias")


def _simpler(a: str, b: str) -> str:
    rank = {name: i for i, name in enumerate(SIMPLER_FIRST)}
    return min((a, b), key=lambda name: rank.get(name, len(rank)))


def _difference(tidy: pd.DataFrame, means: pd.DataFrame, better: str, other: str) -> dict:
    # a failed scan of either model: the interval must hold for the failure shape too (as in the report's tests)
    failed = bool(_failed_persons(tidy, [better, other]))
    inter = person_interval((means[better] - means[other]).to_numpy(float), with_failures=failed)
    inter["excludes_zero"] = bool(inter["method"]) and inter["ci_low"] > 0
    return inter


def _describe(name: str, other: str, diff: dict) -> str:
    if diff["method"]:
        return (f"{name} vs {other}: {diff['mean']:+.3f} Dice per person, 95% CI {diff['ci_low']:+.3f} to "
                f"{diff['ci_high']:+.3f} ({diff['n_persons']} persons, {diff['method']})")
    return f"{name} vs {other}: {diff['mean']:+.3f} Dice per person ({diff['interval_note']})"


def recommend(tidy: pd.DataFrame, *, baselines: Sequence[str], model_paths: Mapping[str, str] | None = None,
              cv: bool = False, metric: str = "DSC") -> dict | None:
    """Apply the rule above to the tidy metrics table of an evaluation.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The tidy table of :func:`pedgm_kit.evaluate.evaluate_models` (``metrics_tidy.csv``).
    baselines : sequence of str
        The models used as shipped (e.g. ``challenge``, ``large``); every other model is a variant.
    model_paths : mapping of str to str, optional
        Weights of each variant (``.../best.hdf5``), used to write the command.
    cv : bool, default False
        Cross-validation run: the command uses the variant folder (the ensemble of its folds).
    metric : str, default "DSC"

    Returns
    -------
    dict or None
        ``model, kind ("variant"/"baseline"), reasons (list of str), rule, command, ranking`` (model ->
        mean per-person Dice); None when no variant was evaluated.
    """
    means = person_means(tidy, metric=metric)
    variants = [m for m in means.columns if m not in baselines]
    shipped = [m for m in means.columns if m in baselines]
    if not variants or means.empty:
        return None
    ranking = means.mean().sort_values(ascending=False)
    ordered = [m for m in ranking.index if m in variants]
    chosen, reasons = ordered[0], []
    if len(ordered) > 1:
        runner = ordered[1]
        diff = _difference(tidy, means, chosen, runner)
        reasons.append(_describe(chosen, runner, diff))
        if not diff["excludes_zero"]:
            chosen = _simpler(chosen, runner)
            reasons.append(f"no evidence that the better-scoring variant is better: the simpler one, {chosen}, is chosen")
    kind = "variant"
    if shipped:
        base = next(m for m in ranking.index if m in shipped)
        diff = _difference(tidy, means, chosen, base)
        reasons.append(_describe(chosen, base, diff))
        if not diff["excludes_zero"]:
            reasons.append(f"no evidence that fine-tuning helped: keep the baseline {base}")
            chosen, kind = base, "baseline"
    return {"model": chosen, "kind": kind, "reasons": reasons, "rule": RULE,
            "command": _command(chosen, kind, (model_paths or {}).get(chosen), cv),
            "ranking": {k: float(v) for k, v in ranking.items()}}


def _command(model: str, kind: str, path: str | None, cv: bool) -> str:
    if kind == "baseline" or not path:
        return f"pedgm segment <scans> --model {model}"
    weights = Path(path)
    if cv:  # <run>/train/fold-<k>/<variant>/best.hdf5 -> <run>/train/<variant>, the ensemble of its folds
        template = fold_dir(".", FOLD_PLACEHOLDER).name  # notebook 05's models: <train>/fold-{fold}/<variant>/...
        folder = fold_folder(weights) or next((p for p in weights.parents if p.name == template), None)
        target = folder.parent / model if folder is not None else weights.parent
    else:
        target = weights
    return f"pedgm segment <scans> --model {target}"
