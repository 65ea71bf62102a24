"""The after-study recommendation: a stated rule on per-person held-out Dice (issue 20)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pedgm_kit.stats.recommend import SIMPLER_FIRST, recommend


def _tidy(means: dict[str, float], *, n_persons: int = 16, noise: float = 0.01, seed: int = 0,
          sessions: int = 1) -> pd.DataFrame:
    """Scan-level Dice of each model for ``n_persons`` persons (``sessions`` scans each)."""
    rng = np.random.default_rng(seed)
    person_effect = rng.normal(0, 0.03, n_persons)
    rows = []
    for model, mean in means.items():
        for p in range(n_persons):
            for s in range(sessions):
                rows.append({"model": model, "scan": f"sub-{p}_ses-{s}", "person": f"sub-{p}", "level": "scan",
                             "slice": -1, "metric": "DSC",
                             "value": mean + person_effect[p] + rng.normal(0, noise)})
    return pd.DataFrame(rows)


PATHS = {v: f"outputs/run-x/train/fold-{{fold}}/{v}/best.hdf5" for v in SIMPLER_FIRST}


def test_clear_winner_is_recommended_with_the_ensemble_command():
    tidy = _tidy({"challenge": 0.70, "pretrained_aug": 0.85, "scratch_aug": 0.75})
    rec = recommend(tidy, baselines=("challenge",), model_paths=PATHS, cv=True)
    assert rec["model"] == "pretrained_aug" and rec["kind"] == "variant"
    assert rec["command"] == "pedgm segment <scans> --model outputs/run-x/train/pretrained_aug"
    assert "95% CI" in rec["reasons"][0] and list(rec["ranking"])[0] == "pretrained_aug"


def test_a_tie_goes_to_the_simpler_variant():
    tidy = _tidy({"challenge": 0.60, "scratch_aug": 0.801, "pretrained_noaug": 0.800}, noise=0.02)
    rec = recommend(tidy, baselines=("challenge",), model_paths=PATHS)
    assert rec["ranking"]["scratch_aug"] > rec["ranking"]["pretrained_noaug"]
    assert rec["model"] == "pretrained_noaug"
    assert any("simpler" in r for r in rec["reasons"])
    assert rec["command"].endswith("fold-{fold}/pretrained_noaug/best.hdf5")  # one split: that weights file


def test_no_evidence_against_the_baseline_keeps_the_baseline():
    tidy = _tidy({"challenge": 0.80, "large": 0.79, "pretrained_aug": 0.805}, noise=0.03)
    rec = recommend(tidy, baselines=("challenge", "large"), model_paths=PATHS)
    best_baseline = max(("challenge", "large"), key=rec["ranking"].get)
    assert rec["model"] == best_baseline and rec["kind"] == "baseline"
    assert rec["command"] == f"pedgm segment <scans> --model {best_baseline}"


def test_too_few_persons_for_an_interval_means_no_evidence():
    tidy = _tidy({"challenge": 0.5, "pretrained_aug": 0.9, "scratch_aug": 0.6}, n_persons=6)
    rec = recommend(tidy, baselines=("challenge",))
    assert rec["model"] == "challenge"
    assert all("no interval" in r for r in rec["reasons"] if " vs " in r)


def test_persons_not_scans_are_the_unit():
    """Two sessions of a person count once: 8 persons x 2 sessions is below the interval rule's 14."""
    tidy = _tidy({"challenge": 0.5, "pretrained_aug": 0.9}, n_persons=8, sessions=2)
    rec = recommend(tidy, baselines=("challenge",))
    assert rec["kind"] == "baseline" and "8 person" in rec["reasons"][0]


def test_only_baselines_gives_no_recommendation():
    assert recommend(_tidy({"challenge": 0.8, "large": 0.85}), baselines=("challenge", "large")) is None


def test_a_failed_scan_needs_the_failure_rule_for_an_interval():
    """With a failed (empty) prediction among the persons, the measured rule shows no interval at any N,
    so even a large mean gain is no evidence: the recommendation keeps the baseline."""
    tidy = _tidy({"challenge": 0.60, "pretrained_aug": 0.85}, n_persons=30)
    failed = (tidy["model"] == "pretrained_aug") & (tidy["person"] == "sub-0")
    tidy.loc[failed, "value"] = 0.0
    hsd = tidy.assign(metric="HSD", value=5.0)
    hsd.loc[failed, "value"] = float("nan")  # an empty prediction: distances undefined
    rec = recommend(pd.concat([tidy, hsd], ignore_index=True), baselines=("challenge",))
    assert rec["kind"] == "baseline" and "no interval" in rec["reasons"][0]


def test_report_recommendation_lets_real_errors_surface(tmp_path):
    """Regression: report._recommendation swallowed KeyError/ValueError/PedgmError, so a malformed
    evaluation table silently dropped the recommendation. Only 'nothing to recommend from' is None."""
    import pytest

    from pedgm_kit.exceptions import ParameterError
    from pedgm_kit.report import _recommendation

    results = {"parameters": {"baseline": "challenge"}, "folds": 3}
    assert _recommendation(tmp_path, results) is None  # no evaluation table
    _tidy({"challenge": 0.8}).to_csv(tmp_path / "metrics_tidy.csv", index=False)
    assert _recommendation(tmp_path, results) is None  # no trained variant
    _tidy({"challenge": 0.7, "pretrained_aug": 0.85}).to_csv(tmp_path / "metrics_tidy.csv", index=False)
    assert _recommendation(tmp_path, results)["model"] == "pretrained_aug"
    _tidy({"challenge": 0.7, "pretrained_aug": 0.85}).drop(columns="person").to_csv(tmp_path / "metrics_tidy.csv",
                                                                                      index=False)
    with pytest.raises(ParameterError, match="lacks column"):
        _recommendation(tmp_path, results)
