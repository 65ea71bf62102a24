"""benchmarks/ensemble_cv.py on a tiny cross-validation run made here (issue 20).

3 persons, 3 folds: fold k tests one person, trains on another and validates on the third, so each
person was not trained on by 2 members (their test fold's and the one they validated): every person is
paired. The scans are real sample scans cut to 3 labelled slices; the members are the challenge weights
(the second with one kernel scaled, so the members differ).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.evaluate import score_pair
from pedgm_kit.geometry import slice_axis
from pedgm_kit.segment import EnsembleSegmenter, Segmenter
from pedgm_kit.weights import weights_path

pytestmark = pytest.mark.slow

SUBJECTS = ("sub-9418", "sub-9584", "sub-9604")
ROLES = {1: ("sub-9418", "sub-9584", "sub-9604"), 2: ("sub-9584", "sub-9604", "sub-9418"),
         3: ("sub-9604", "sub-9418", "sub-9584")}  # fold: (test, train, val)


def _bench():
    import sys

    if "bench_ensemble_cv" not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "benchmarks" / "ensemble_cv.py"
        spec = importlib.util.spec_from_file_location("bench_ensemble_cv", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclass looks its module up
        spec.loader.exec_module(module)
    return sys.modules["bench_ensemble_cv"]


def _crop(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img, gm = nib.load(image), nib.load(mask)
    axis = slice_axis(img.affine)
    labelled = np.flatnonzero(np.asanyarray(gm.dataobj).any(axis=tuple(k for k in range(3) if k != axis)))
    mid = labelled[len(labelled) // 2]
    cut = [slice(None)] * 3
    cut[axis] = slice(mid - 1, mid + 2)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / image.name, out / mask.name
    img.slicer[tuple(cut)].to_filename(paths[0])
    gm.slicer[tuple(cut)].to_filename(paths[1])
    return paths


@pytest.fixture(scope="module")
def tiny_cv_run(tmp_path_factory, gm_challenge):
    run = tmp_path_factory.mktemp("cv") / "run"
    scans = {}
    for sub in SUBJECTS:
        name = f"{sub}_run-1_T2starw"
        scans[sub] = _crop(gm_challenge / f"{sub}/anat/{name}.nii.gz",
                           gm_challenge / f"derivatives/labels/{sub}/anat/{name}_gmseg-manual.nii.gz", run / "scans")
    meta = json.loads(weights_path("challenge").with_suffix(".json").read_text())
    for k, (test, train, val) in ROLES.items():
        folder = run / "train" / f"fold-{k}" / "v"
        folder.mkdir(parents=True)
        shutil.copy(weights_path("challenge"), folder / "best.hdf5")
        if k == 2:
            with h5py.File(folder / "best.hdf5", "r+") as h5:
                h5["rate6_2/rate6_2/kernel:0"][...] *= 1.05
        (folder / "best.json").write_text(json.dumps({**meta, "threshold": 0.999, "variant": "v"}))
        (folder / "summary.json").write_text(json.dumps({"variant": "v", "train_persons": [train], "val_persons": [val],
                                                         "test_persons": [test], "threshold": 0.999}))
        data = run / "data" / "data" / f"fold-{k}"
        data.mkdir(parents=True)
        (data / "scans.json").write_text(json.dumps({"schema": 1, "scans": [
            {"split": "test", "scan_id": f"{test}_run-1_T2starw", "person_id": test, "centring": "model",
             "source_image": str(scans[test][0]), "source_gm_mask": str(scans[test][1])}]}))
    (run / "preprocess" / "simulated-invert").mkdir(parents=True)
    return run, scans


def test_protocol_members_not_trained_on_each_person(tiny_cv_run):
    bench = _bench()
    run, _ = tiny_cv_run
    assert bench.cv_variants(run) == ["v"]
    members = bench.fold_members(run, "v")
    assert [m.fold for m in members] == [1, 2, 3]
    # sub-9418: tested by fold 1, validated fold 2's model, trained fold 3's: E = folds 1 and 2
    assert [m.fold for m in bench.not_trained_on(members, "sub-9418")] == [1, 2]
    for person in SUBJECTS:
        group = bench.not_trained_on(members, person)
        assert all(person not in m.train_persons for m in group) and len(group) == 2


def test_benchmark_scores_ensemble_and_members_on_the_same_persons(tiny_cv_run, capsys):
    bench = _bench()
    run, scans = tiny_cv_run
    assert bench.main(["--run", str(run), "--n-boot", "50", "--csv", str(run / "bench")]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED data: simulated-invert" in out and "| SIMULATED v |" in out
    assert "never scored here" in out and "did not train on them" in out
    table = __import__("pandas").read_csv(run / "bench" / "v_scans.csv")
    members = bench.fold_members(run, "v")
    person = "sub-9418"
    image, truth = scans[person]
    group = [m.weights for m in bench.not_trained_on(members, person)]
    expected_ens = float(score_pair(EnsembleSegmenter(members=group).segment(image), truth)[0]["DSC"].iloc[0])
    expected_members = np.mean([float(score_pair(Segmenter(w).segment(image), truth)[0]["DSC"].iloc[0]) for w in group])
    mine = table[table["person"] == person].set_index("model")["value"]
    assert mine["ensemble"] == pytest.approx(expected_ens) and mine["members' mean"] == pytest.approx(expected_members)
    held = float(score_pair(Segmenter(members[0].weights).segment(image), truth)[0]["DSC"].iloc[0])
    assert mine["held-out member"] == pytest.approx(held)  # fold 1 tested sub-9418
    slices = __import__("pandas").read_csv(run / "bench" / "v_slices.csv")
    assert set(slices["model"]) == {"ensemble (disagreement)", "held-out member (TTA)"}
    assert set(slices["person"]) == set(SUBJECTS)
    row = bench.summarise("v", table, slices, n_boot=50)
    assert row["paired_persons"] == row["cv_persons"] == 3
    assert row["diff"] == pytest.approx(row["ensemble"] - row["members_mean"])


def test_benchmark_refuses_a_run_without_cv(tmp_path, capsys):
    assert _bench().main(["--run", str(tmp_path)]) == 2
    assert "no variant trained on every fold" in capsys.readouterr().err
