"""The locked test set (``data: locked_test_persons``): held out of every fold and choice, scored once at the end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pedgm_kit.cli import main
from pedgm_kit.evaluate.locked import LOCKED_TITLE, final_models
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.params import load_params
from pedgm_kit.splits import (
    choose_locked_persons,
    hold_out_locked,
    kfold_split,
    locked_problems,
)


def _frame(n_persons: int, *, sessions: int = 2) -> pd.DataFrame:
    rows = [{"scan_id": f"p{p}_s{s}", "person_id": f"p{p}", "Site": "AB"[p % 2]}
            for p in range(n_persons) for s in range(1 + (p % sessions))]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- the parameter
def test_ids_are_checked_and_removed_before_any_split():
    frame = _frame(8)
    rest, record = hold_out_locked(frame, ["p1", "p6"], cv_folds=3, balance_on="Site", seed=0)
    assert record["persons"] == ["p1", "p6"] and record["scans"] == ["p1_s0", "p1_s1", "p6_s0"]
    assert not set(rest["person_id"]) & {"p1", "p6"} and len(rest) + 3 == len(frame)
    for fold in kfold_split(rest, k=3, balance_on="Site", seed=0):
        assert not {s for ids in fold.values() for s in ids} & set(record["scans"])
    # ids given as numbers (a YAML file's 3) compare as strings
    assert choose_locked_persons(_frame(4).assign(person_id=lambda f: f["person_id"].str[1:]), [3]) == ["3"]


@pytest.mark.parametrize("spec, match", [
    (["p1", "nobody"], r"'data.locked_test_persons': unknown person id\(s\) \['nobody'\]"),
    (["p1", "p1"], r"'data.locked_test_persons' lists person\(s\) \['p1'\] twice"),
    ("p1", r"'data.locked_test_persons' must be a list of person ids or a fraction"),
    (1.5, r"'data.locked_test_persons' must be a list of person ids or a fraction in \(0, 1\)"),
    ([True], r"'data.locked_test_persons' must list person ids"),
])
def test_bad_values_are_one_line_errors(spec, match):
    with pytest.raises(ParameterError, match=match) as err:
        hold_out_locked(_frame(6), spec)
    assert "\n" not in str(err.value)


def test_a_fraction_leaving_too_few_persons_for_the_folds_is_refused():
    problems = locked_problems(_frame(6), 0.6, cv_folds=4, seed=0)
    assert len(problems) == 1 and "'data.locked_test_persons' locks" in problems[0]
    assert "4 cross-validation folds need(s) at least 4" in problems[0]
    assert locked_problems(_frame(6), ["p0", "p1", "p2", "p3"]) and not locked_problems(_frame(6), ["p0"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 12), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**31), folds=st.integers(0, 4))
def test_fraction_draw_is_seeded_person_grouped_or_a_one_line_error(n, fraction, seed, folds):
    frame = _frame(n)
    problems = locked_problems(frame, fraction, cv_folds=folds, balance_on="Site", seed=seed)
    if problems:
        assert len(problems) == 1 and "\n" not in problems[0] and "data.locked_test_persons" in problems[0]
        with pytest.raises(ParameterError):
            hold_out_locked(frame, fraction, cv_folds=folds, balance_on="Site", seed=seed)
        return
    rest, record = hold_out_locked(frame, fraction, cv_folds=folds, balance_on="Site", seed=seed)
    again = choose_locked_persons(frame, fraction, balance_on="Site", seed=seed)
    assert record["persons"] == again and len(again) >= 1  # the same draw for the same seed
    assert rest["person_id"].nunique() == n - len(again) >= max(folds, 3)
    locked_scans = frame.loc[frame["person_id"].isin(again), "scan_id"].tolist()
    assert sorted(record["scans"]) == sorted(locked_scans)  # every scan of a locked person, no other


def test_parameter_file_is_checked_against_the_dataset(gm_challenge, tmp_path, capsys):
    def params(**data):
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump({"preprocess": {"data_dir": ""}, "data": data}))
        return path

    assert load_params(params(cv_folds=3, locked_test_persons=["sub-9584"]))["data"]["locked_test_persons"]
    with pytest.raises(ParameterError, match=r"'data.locked_test_persons': unknown person id\(s\) \['sub-0000'\]"):
        load_params(params(locked_test_persons=["sub-0000"]))
    with pytest.raises(ParameterError, match=r"'data.locked_test_persons' locks \d person\(s\) .* leaving \d; "
                                             r"5 cross-validation folds"):
        load_params(params(cv_folds=5, locked_test_persons=0.5))
    with pytest.raises(ParameterError, match=r"'data.locked_test_persons' must be a list of person ids or a number"):
        load_params(params(locked_test_persons="sub-9584"))
    assert main(["run", "--params", str(params(locked_test_persons=["sub-0000"])), "--outputs", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.locked_test_persons" in err[0] and "sub-0000" in err[0]
    assert not list(tmp_path.glob("run-*"))  # nothing written


def test_final_models_are_fold_ensembles(tmp_path):
    for k in (1, 2):
        (tmp_path / "train" / f"fold-{k}" / "v").mkdir(parents=True)
        (tmp_path / "train" / f"fold-{k}" / "v" / "best.hdf5").write_bytes(b"")
    template = str(tmp_path / "train" / "fold-{fold}" / "v" / "best.hdf5")
    single = str(tmp_path / "one.hdf5")
    final = final_models({"challenge": "challenge", "v": template, "one": single}, folds=2)
    assert final == {"challenge": "challenge", "v": str(tmp_path / "train" / "v"), "one": single}
    (tmp_path / "train" / "final" / "v" / "fold-1").mkdir(parents=True)  # `pedgm train --final` packaged it
    (tmp_path / "train" / "final" / "v" / "fold-2").mkdir(parents=True)
    for k in (1, 2):
        (tmp_path / "train" / "final" / "v" / f"fold-{k}" / "best.hdf5").write_bytes(b"")
    assert final_models({"v": template}, folds=2)["v"] == str(tmp_path / "train" / "final" / "v")
    with pytest.raises(ParameterError, match="has 2 fold model"):
        final_models({"v": template}, folds=3)
    with pytest.raises(ParameterError, match="no fold ensemble can be formed"):
        final_models({"w": str(tmp_path / "masks-{fold}")}, folds=2)


# ------------------------------------------------------------------ the tiny demo_cv run (conftest: one locked person)
@pytest.mark.slow
def test_locked_person_is_in_no_fold_no_choice_and_scored_once_at_the_end(tiny_cv_run):
    run, _ = tiny_cv_run
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    locked = manifest["locked_test"]
    assert locked["persons"] == ["sub-9584"] and locked["scans"] == ["sub-9584_run-1_T2starw"]
    # in no fold's train / val / test list, arrays or scan records
    assert not {s for fold in manifest["folds"] for ids in fold.values() for s in ids} & set(locked["scans"])
    for arrays in sorted((run / "data" / "data").rglob("*.npz")):
        with np.load(arrays, allow_pickle=False) as data:
            assert "sub-9584" not in set(data["person_id"].tolist()), arrays
    for scans in (run / "data" / "data").rglob("scans.json"):
        assert not {r["scan_id"] for r in json.loads(scans.read_text())["scans"]} & set(locked["scans"])
    # and so in no choice: every training run's persons (threshold and best epoch are chosen on its val persons)
    summaries = sorted((run / "train").rglob("summary.json"))
    assert summaries
    for path in summaries:
        s = json.loads(path.read_text())
        assert "sub-9584" not in {*s.get("train_persons", []), *s.get("val_persons", []), *s.get("test_persons", [])}
    results = json.loads((run / "evaluation" / "results.json").read_text())
    assert "sub-9584" not in results["persons"]
    # scored once at the end, by each variant's fold ensemble, in its own table and report section
    record = json.loads((run / "evaluation" / "locked_test.json").read_text())
    assert record["persons"] == ["sub-9584"] and len(record["history"]) == 1
    assert record["final_models"]["pretrained_adapted"] == str(run / "train" / "pretrained_adapted")
    assert record["final_models"]["challenge"] == "challenge"
    table = pd.read_csv(run / "evaluation" / "locked_test.csv")
    assert set(table["model"]) == {"challenge", "large", "scratch_noaug", "pretrained_adapted"}
    assert (table["n_persons"] == 1).all() and table["ci_low"].isna().all()  # 1 person: no interval (the rule)
    assert table["interval_note"].str.startswith("no interval").all()
    tidy = pd.read_csv(run / "evaluation" / "locked_test_tidy.csv")
    assert set(tidy["scan"]) == set(locked["scans"])
    page = (run / "index.html").read_text()
    assert LOCKED_TITLE in page and "sub-9584" in page
    assert page.index(LOCKED_TITLE) < page.index("Paired statistics against the baseline")
