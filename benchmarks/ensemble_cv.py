"""Fold ensemble vs its members, and its disagreement vs TTA as an uncertainty, on a cross-validation run.

Usage: python benchmarks/ensemble_cv.py --run outputs/<run-id> [--variants V ...] [--dice-below 0.8]
(the run folder of ``pedgm run`` with ``data: cv_folds: k``, e.g. ``make demo-cv``'s).

Protocol (printed with the results, because it decides what the numbers mean). Persons are the unit.

- In k-fold cross-validation every person is tested by exactly one member (the model of the fold that
  held them out) and was in the training or validation persons of the k-1 others. So the ensemble of
  all k members -- the deliverable -- has no held-out person in a CV run: each person was trained on
  by some of its members. Scoring it on the CV persons would be in-sample; this benchmark never does.
  Its held-out Dice needs persons locked away from every fold (``benchmarks/ensemble_vs_members.py``
  does that on 2 locked persons).
- What a CV run does allow is the fair comparison of the ensemble *mechanism* (averaging members)
  with the members themselves: for each person, the members that did not TRAIN on them -- the
  member of their test fold, and the members for which they were a validation person -- form that
  person's ensemble E(p). Each member of E(p) is scored on the person (the members' mean), and the
  mean of their probabilities at the variant's threshold (:mod:`pedgm_kit.segment.ensemble`) is the
  ensemble's score. Same persons, same models on both sides: the comparison is paired per person.
  Only persons with at least 2 such members count (with one, the "ensemble" is that member).
  Caveat: a validation person chose its member's epoch (and a validation-chosen threshold), so the
  absolute levels are slightly optimistic -- through the same members on both sides of the
  difference ensemble - members.
- The CV estimate of the variant (each person by the one member that never saw them, mean over
  persons) is printed beside it, over all persons.
- Uncertainty, within the run's one condition: on the same persons, the ensemble's disagreement
  (per-voxel SD of the E(p) members' maps; per-slice score :func:`pedgm_kit.segment.slice_scores`)
  for finding the ensemble's slices with Dice < ``--dice-below``, against TTA's (9 seeded passes of
  the held-out member) for finding that member's bad slices. AUROC with a person-clustered interval
  (:func:`pedgm_kit.evaluate.uncertainty_table`; descriptive: its coverage was not measured).

A run under a simulated shift (``preprocess: shift``) is named SIMULATED in every line that reports it.
Prints the protocol, one Markdown table for the README, and the per-person rows; ``--csv`` keeps them.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROTOCOL = (
    "Protocol (persons are the unit): each person's ensemble is the members that did not train on them (their "
    "test fold's member + the members they validated); each of those members and their probability mean are scored "
    "on the person (paired, same persons and models); persons with < 2 such members are left out of the pair. The "
    "all-fold ensemble is never scored here: every CV person was trained on by some of its members (its held-out "
    "Dice needs locked persons). Validation persons chose their member's epoch: levels slightly optimistic, through "
    "the same members on both sides. CV estimate: each person by the one member that never saw them. Uncertainty: "
    "ensemble disagreement vs the held-out member's TTA, AUROC for slices with Dice < {below:g} within the run's one "
    "condition, person-clustered interval (descriptive).")


@dataclass
class Member:
    """One fold model of a variant and the persons it saw."""

    fold: int
    weights: Path
    train_persons: set[str]
    val_persons: set[str]
    test_scans: list[dict] = field(default_factory=list)  # scans.json records of the fold's test split


def fold_members(run: str | Path, variant: str) -> list[Member]:
    """The variant's fold models of a CV run folder, with their training/validation persons and test scans.

    Raises
    ------
    InputFileError
        A fold model without ``summary.json`` (or without ``train_persons``), or a fold without test records.
    """
    from pedgm_kit.data_creation import read_scans
    from pedgm_kit.exceptions import InputFileError
    from pedgm_kit.layout import RunLayout, TrainPlan, fold_dir
    from pedgm_kit.train.records import load_summary

    layout = RunLayout(run)
    members = []
    for planned in sorted((r for r in TrainPlan.of(layout.train).runs
                           if r.variant == variant and r.fold and not r.persons), key=lambda r: r.fold):
        folder = planned.folder(layout.train)
        if not (folder / "summary.json").is_file():
            raise InputFileError(f"No such file or no access: '{folder / 'summary.json'}' (fold {planned.fold} of "
                                 f"{variant}: train it first)")
        summary = load_summary(folder)
        if not summary.get("train_persons"):
            raise InputFileError(f"{folder / 'summary.json'}: no train_persons recorded (which persons it saw decides "
                                 "where it may be scored)")
        records = read_scans(fold_dir(layout.arrays, planned.fold), "test")
        if not records or not all(r.get("source_image") and r.get("source_gm_mask") for r in records):
            raise InputFileError(f"{fold_dir(layout.arrays, planned.fold) / 'scans.json'}: no test scans with "
                                 "source_image and source_gm_mask (rebuild the fold with notebook 02)")
        members.append(Member(planned.fold, folder / "best.hdf5", set(map(str, summary["train_persons"])),
                              set(map(str, summary.get("val_persons") or [])), records))
    return members


def cv_variants(run: str | Path) -> list[str]:
    """The variants trained on every fold (all persons) of a CV run, in plan order."""
    from pedgm_kit.layout import RunLayout, TrainPlan

    plan = TrainPlan.of(RunLayout(run).train)
    runs = [r for r in plan.runs if r.fold and not r.persons]
    folds = {r.fold for r in runs}
    return [v for v in dict.fromkeys(r.variant for r in runs) if {r.fold for r in runs if r.variant == v} == folds]


def not_trained_on(members: list[Member], person: str) -> list[Member]:
    """The members that did not train on ``person`` (the protocol's E(p)), in fold order."""
    return [m for m in members if person not in m.train_persons]


def _slice_rows(label: str, scan: str, person: str, frame: pd.DataFrame, slices: list[dict]) -> list[dict]:
    score = {int(r["slice"]): float(r["score"]) for r in slices}
    rows = []
    for k, dsc in zip(frame["slice"].astype(int), frame["DSC"].astype(float)):
        for metric, value in (("DSC", dsc), ("uncertainty", score.get(k, math.nan))):
            rows.append({"model": label, "scan": scan, "person": person, "level": "slice", "slice": k,
                         "metric": metric, "value": value})
    return rows


def score_variant(members: list[Member], *, seed: int = 0, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment and score every test scan of the variant's folds as the protocol says.

    Returns
    -------
    (scans, slices) : pandas.DataFrame
        ``scans``: tidy scan rows (``model`` "held-out member", and for persons with >= 2 members
        not trained on them "members' mean" and "ensemble"; ``n_members``); ``slices``: tidy slice
        rows (DSC and the uncertainty score) of "ensemble (disagreement)" and "held-out member (TTA)".
    """
    from pedgm_kit.evaluate import score_pair
    from pedgm_kit.segment import EnsembleSegmenter, Segmenter

    models = {m.fold: Segmenter(m.weights) for m in members}
    scans, slices = [], []
    for member in members:
        for record in member.test_scans:
            scan, person = str(record["scan_id"]), str(record["person_id"])
            image, truth = record["source_image"], record["source_gm_mask"]
            cord_scale = record.get("cord_scale_rule") or None
            group = not_trained_on(members, person)
            paired = len(group) >= 2
            if progress:
                print(f"  fold {member.fold} {scan}: {len(group)} member(s) did not train on {person}", flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                held = models[member.fold].segment(image, seed=seed, cord_scale=cord_scale,
                                                   uncertainty="tta" if paired else None)
            row, frame = score_pair(held, truth)
            dice = {member.fold: float(row["DSC"].iloc[0])}
            scans.append({"model": "held-out member", "scan": scan, "person": person, "level": "scan", "slice": pd.NA,
                          "metric": "DSC", "value": dice[member.fold], "n_members": len(group)})
            if not paired:
                continue
            slices += _slice_rows("held-out member (TTA)", scan, person, frame, held.extra["pedgm_uncertainty"]["slices"])
            for other in group:
                if other.fold not in dice:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        mask = models[other.fold].segment(image, seed=seed, cord_scale=cord_scale)
                    dice[other.fold] = float(score_pair(mask, truth)[0]["DSC"].iloc[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ens = EnsembleSegmenter(members=[m.weights for m in group]).segment(
                    image, seed=seed, cord_scale=cord_scale, uncertainty="ensemble")
            row, frame = score_pair(ens, truth)
            for label, value in (("members' mean", float(np.mean([dice[m.fold] for m in group]))),
                                 ("ensemble", float(row["DSC"].iloc[0]))):
                scans.append({"model": label, "scan": scan, "person": person, "level": "scan", "slice": pd.NA,
                              "metric": "DSC", "value": value, "n_members": len(group)})
            slices += _slice_rows("ensemble (disagreement)", scan, person, frame, ens.extra["pedgm_uncertainty"]["slices"])
    return pd.DataFrame(scans), pd.DataFrame(slices, columns=["model", "scan", "person", "level", "slice", "metric",
                                                               "value"])


def summarise(variant: str, scans: pd.DataFrame, slices: pd.DataFrame, *, dice_below: float = 0.8,
              n_boot: int = 2000, seed: int = 0) -> dict:
    """One row of the README table from :func:`score_variant`'s tables (means over persons)."""
    from pedgm_kit.evaluate import uncertainty_table
    from pedgm_kit.evaluate.scoring import person_scores
    from pedgm_kit.stats.intervals import person_interval

    per = person_scores(scans).pivot(index="person", columns="model", values="value")
    pair = ["members' mean", "ensemble"]
    paired = per.dropna(subset=pair) if set(pair) <= set(per.columns) else pd.DataFrame(columns=pair, dtype=float)
    diff = person_interval((paired["ensemble"] - paired["members' mean"]).to_numpy(float), n_boot=n_boot, seed=seed)
    unc = uncertainty_table(slices, dice_below=dice_below, n_boot=n_boot, seed=seed).set_index("model") if len(
        slices) else pd.DataFrame()

    def auroc(label: str) -> tuple[float, float, float, int]:
        if label not in unc.index:
            return math.nan, math.nan, math.nan, 0
        r = unc.loc[label]
        return float(r["auroc"]), float(r["auroc_ci_low"]), float(r["auroc_ci_high"]), int(r["failed"])

    ens_auc, tta_auc = auroc("ensemble (disagreement)"), auroc("held-out member (TTA)")
    return {
        "variant": variant, "cv_persons": int(per["held-out member"].notna().sum()),
        "cv_dice": float(per["held-out member"].mean()),
        "paired_persons": int(len(paired)), "members_mean": float(paired["members' mean"].mean()) if len(paired) else math.nan,
        "ensemble": float(paired["ensemble"].mean()) if len(paired) else math.nan,
        "diff": diff["mean"], "diff_ci_low": diff["ci_low"], "diff_ci_high": diff["ci_high"],
        "diff_note": diff["interval_note"],
        "slices": int(slices[(slices["metric"] == "DSC") & (slices["model"] == "ensemble (disagreement)")].shape[0])
        if len(slices) else 0,
        "auroc_ensemble": ens_auc[0], "auroc_ensemble_ci": ens_auc[1:3], "failed_ensemble": ens_auc[3],
        "auroc_tta": tta_auc[0], "auroc_tta_ci": tta_auc[1:3], "failed_tta": tta_auc[3],
    }


def _num(x: float, ci=None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    text = f"{x:.3f}"
    if ci is not None and all(math.isfinite(c) for c in ci):
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def markdown_table(rows: list[dict], *, simulated: str | None, dice_below: float) -> str:
    """The README table: one row per variant."""
    sim = f"SIMULATED ({simulated}): " if simulated else ""
    lines = [f"{sim}fold ensemble vs its members (mean over persons; see the protocol above)", "",
             ("| variant | CV Dice, held-out member (persons) | persons paired | members' mean | ensemble | ensemble - "
              f"members | AUROC Dice < {dice_below:g}: ensemble disagreement (failed / slices) | AUROC: TTA (failed) |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = _num(r["diff"], (r["diff_ci_low"], r["diff_ci_high"]))
        if not math.isfinite(r["diff_ci_low"]):
            diff += " (no interval)"
        lines.append(f"| {(sim and 'SIMULATED ') + r['variant']} | {_num(r['cv_dice'])} ({r['cv_persons']}) | "
                     f"{r['paired_persons']} | {_num(r['members_mean'])} | {_num(r['ensemble'])} | {diff} | "
                     f"{_num(r['auroc_ensemble'], r['auroc_ensemble_ci'])} ({r['failed_ensemble']} / {r['slices']}) | "
                     f"{_num(r['auroc_tta'], r['auroc_tta_ci'])} ({r['failed_tta']}) |")
    notes = sorted({r["diff_note"] for r in rows if r["diff_note"] and not math.isfinite(r["diff_ci_low"])})
    lines += [""] + [f"Difference interval: {n}" for n in notes]
    lines.append("AUROC intervals resample persons (descriptive: coverage not measured).")
    return "\n".join(lines)


def simulated_label(run: str | Path) -> str | None:
    """What was simulated in the run (its SIMULATED preprocessing or the evaluation's shift label), or None."""
    import json

    from pedgm_kit.layout import RunLayout

    layout = RunLayout(run)
    if layout.results.is_file():
        label = json.loads(layout.results.read_text()).get("shift")
        if label:
            return str(label)
    sims = sorted(layout.preprocess.glob("simulated-*")) if layout.preprocess.is_dir() else []
    return sims[0].name if sims else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder of a cross-validation pedgm run (make demo-cv)")
    parser.add_argument("--variants", nargs="+", help="default: every variant trained on all folds")
    parser.add_argument("--dice-below", type=float, default=0.8, help="a slice fails below this Dice (default 0.8)")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="seed of TTA and of the bootstrap")
    parser.add_argument("--csv", help="also write the per-scan and per-slice rows here (a folder)")
    args = parser.parse_args(argv)

    from pedgm_kit.exceptions import PedgmError

    try:
        variants = args.variants or cv_variants(args.run)
        if not variants:
            raise PedgmError(f"{args.run}: no variant trained on every fold (a cross-validation run folder is needed)")
        simulated = simulated_label(args.run)
        print(PROTOCOL.format(below=args.dice_below))
        if simulated:
            print(f"SIMULATED data: {simulated} (every number below is under this simulated shift)")
        rows, tables = [], []
        for variant in variants:
            members = fold_members(args.run, variant)
            print(f"{variant}: {len(members)} fold models", flush=True)
            scans, slices = score_variant(members, seed=args.seed, progress=True)
            rows.append(summarise(variant, scans, slices, dice_below=args.dice_below, n_boot=args.n_boot,
                                  seed=args.seed))
            tables.append((variant, scans, slices))
    except PedgmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(markdown_table(rows, simulated=simulated, dice_below=args.dice_below))
    print()
    for variant, scans, _ in tables:
        per = scans.pivot_table(index="person", columns="model", values="value", aggfunc="mean")
        with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
            print(f"{'SIMULATED ' if simulated else ''}{variant}, per person:")
            print(per.to_string())
    if args.csv:
        out = Path(args.csv)
        out.mkdir(parents=True, exist_ok=True)
        for variant, scans, slices in tables:
            scans.to_csv(out / f"{variant}_scans.csv", index=False)
            slices.to_csv(out / f"{variant}_slices.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
