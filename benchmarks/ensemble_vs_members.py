"""Fold ensemble vs its members: held-out Dice on locked test persons (a small CPU-sized run).

Protocol (stated, because it decides what the comparison means):

- the sample's labelled run-1 scans (8 scans, 6 persons) are split by person: ``--test-persons``
  (default sub-9604 and sub-9669, one scan each) are LOCKED: no member trains or selects on them;
- the other persons are split into ``--folds`` person-grouped folds; member k fine-tunes the
  challenge weights on the other folds and selects its epoch on fold k (its validation persons);
- every member, and the ensemble of all members (mean probability at the variant's threshold,
  :mod:`pedgm_kit.segment.ensemble`), segments the locked scans; Dice on their labelled slices,
  per person (each locked person is unseen by every member, so member and ensemble are compared on
  the same persons, which is the fair comparison for an ensemble: a CV person was seen by k-1 of its
  members).

With 2 locked persons this measures the mechanism, not a population effect: no interval is printed.
Prints Dice per person for every member, the members' mean, and the ensemble.

Usage: python benchmarks/ensemble_vs_members.py [--epochs 3] [--max-slices 16] [--folds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-persons", nargs="+", default=["sub-9604", "sub-9669"])
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-slices", type=int, default=16)
    parser.add_argument("--keep", help="keep the run here instead of a temporary folder")
    parser.add_argument("--reuse", action="store_true", help="with --keep: score the members already trained there")
    args = parser.parse_args(argv)

    from pedgm_kit.data_creation import build_split_arrays, save_npz
    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.evaluate import score_pair
    from pedgm_kit.io import save_like
    from pedgm_kit.preprocess import preprocess_scan, save_preprocessed
    from pedgm_kit.registry import fetch_group
    from pedgm_kit.segment import EnsembleSegmenter, Segmenter
    from pedgm_kit.train import TrainConfig, train_variant

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(fetch_group("gm-challenge-data"))
    persons = index.persons()  # person -> scan ids
    locked = [s for p in args.test_persons for s in persons[p]]
    rest = sorted(p for p in persons if p not in args.test_persons)
    folds = [rest[k::args.folds] for k in range(args.folds)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        members = [root / "train" / f"fold-{k}" / "v" / "best.hdf5" for k in range(1, args.folds + 1)]
        reuse = args.reuse and all(m.is_file() for m in members)
        (root / "pre").mkdir(parents=True, exist_ok=True)
        rows = []
        for scan_id in [] if reuse else [s for p in sorted(persons) for s in persons[p]]:
            paths = save_preprocessed(preprocess_scan(index[scan_id]), root / "pre", overwrite=True)
            rows.append({"scan_id": scan_id, "person_id": index[scan_id].person_id, "image": paths["image"].name})
        frame = pd.DataFrame(rows)
        for k, val_persons in enumerate([] if reuse else folds, start=1):
            data = root / "data" / f"fold-{k}"
            data.mkdir(parents=True, exist_ok=True)
            split = {"train": [s for p in rest if p not in val_persons for s in persons[p]],
                     "val": [s for p in val_persons for s in persons[p]], "test": locked}
            for name, ids in split.items():
                save_npz(build_split_arrays(frame, ids, root=root / "pre", keep_empty_slices=False),
                         data / f"{name}.npz")
            config = TrainConfig(epochs=args.epochs, max_slices=args.max_slices, seed=k, sweep=True)
            train_variant(data, root / "train" / f"fold-{k}", config, variant="v", verbose=0, export_onnx=False)
        train_s = time.perf_counter() - start
        models = {f"member {k}": Segmenter(m) for k, m in enumerate(members, start=1)}
        models["ensemble"] = EnsembleSegmenter(members=members)
        results = []
        for scan_id in locked:
            scan = index[scan_id]
            for label, model in models.items():
                pred = root / "pred" / label.replace(" ", "-") / f"{scan_id}_gmseg.nii.gz"
                pred.parent.mkdir(parents=True, exist_ok=True)
                seg = model.segment(scan.image)
                save_like(np.asanyarray(seg.dataobj), seg, pred, overwrite=True)
                row, _ = score_pair(pred, scan.gm_mask)
                results.append({"person": scan.person_id, "scan": scan_id, "model": label,
                                "dice": float(row["DSC"].iloc[0])})
    table = pd.DataFrame(results)
    per_person = table.groupby(["model", "person"])["dice"].mean().unstack("model")
    member_cols = [c for c in per_person.columns if c.startswith("member")]
    per_person["members' mean"] = per_person[member_cols].mean(axis=1)
    print(f"locked test persons: {', '.join(args.test_persons)} ({len(locked)} scans); folds (validation persons): "
          f"{folds}; {args.epochs} epochs, {args.max_slices} slices per member, no early stopping; "
          + ("members reused" if reuse else f"training {train_s / 60:.1f} min"))
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
        print(per_person.to_string())
        print("mean over locked persons:")
        print(per_person.mean().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
