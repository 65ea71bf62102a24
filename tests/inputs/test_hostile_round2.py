"""Hostile input, round two: every entry point reads images through one input layer, options are
honoured or refused (never ignored), and the cases an outside run found each end in a correct output
or a one-line error with exit status 2.

Families: (1) the same bad files fed to every entry point that reads an image, (2) a closed pipe,
(3) ``segment`` outputs (``--output-dir``, ``--csv``, ``--bids``), (4) BIDS cohorts (``.nii``
images, dangling links, failed subjects, ``--uncertainty`` reruns), (5) parameter files checked
against the dataset, (6) null weights metadata, (7) absurd batch sizes, (8) messages (nibabel's log
lines, overflow, zero-length axes, temporary names, a file where a folder should be), (9) the
documented decisions (negative pixdim, a tiny threshold, an empty cord mask).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from test_hostile import _one_line, _scan, _tree, _weights_copy

from pedgm_kit.cli import main
from pedgm_kit.exceptions import PedgmError

REPO = Path(__file__).resolve().parents[2]


def _disc(shape=(80, 80, 5)) -> np.ndarray:
    """A 0/1 disc per slice: a valid mask and a valid (non-constant) image at once."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (shape[0] / 6) ** 2)
    return np.repeat(disc[..., None], shape[2], axis=2).astype(np.uint8)


def _bad_file(folder: Path, case: str) -> Path:
    """One of :data:`BAD_FILES`, written to ``folder/bad.nii.gz`` (masks and images alike)."""
    path = folder / "bad.nii.gz"
    if case == "100 mm voxels":
        return _scan(path, data=_disc(), affine=np.diag([-100.0, 100.0, 5.0, 1.0]))
    if case == "zero-length axis":
        nib.save(nib.Nifti1Image(np.zeros((49, 54, 0), np.float32), np.diag([0.5, 0.5, 5, 1])), path)
        return path
    if case == "negative pixdim":
        return _scan(path, data=_disc(), zooms=(0.5, 0.5, -5.0), qform_only=True)
    if case == "beyond float32":
        return _scan(path, data=_disc().astype(np.float64) * 1e300)
    if case == "NaN affine":
        return _scan(path, data=_disc(), affine=np.diag([0.5, np.nan, 5.0, 1.0]), raw_sform=True)
    if case == "truncated gzip":
        good = _scan(folder / "good.nii.gz", data=_disc())
        path.write_bytes(good.read_bytes()[:300])
        good.unlink()
        return path
    if case == "header nibabel repairs, 200 mm voxels":
        img = nib.Nifti1Image(_disc(), np.diag([-200.0, 200.0, 5.0, 1.0]))
        img.header["sizeof_hdr"] = 100  # nibabel logs "sizeof_hdr should be 348" and repairs it
        img.header["pixdim"][1:4] = 0  # and "pixdim[1,2,3] should be non-zero"
        img.update_header = lambda: None
        nib.save(img, path)
        return path
    if case in ("NaN quaternion", "quaternion longer than 1"):  # found by tests/inputs/test_fuzz.py: tracebacks then
        img = nib.Nifti1Image(_disc(), np.diag([-0.5, 0.5, 5.0, 1.0]))
        img.set_sform(img.affine, code=2)
        img.header["qform_code"] = 1
        img.header["quatern_b"] = np.nan if case == "NaN quaternion" else 1.5
        img.update_header = lambda: None
        nib.save(img, path)
        return path
    if case == "dangling link":
        path.symlink_to(folder / "gone.nii.gz")
        return path
    raise AssertionError(case)


BAD_FILES = {
    "100 mm voxels": "in-plane voxel size 100 mm",
    "zero-length axis": "has a zero-length dimension (shape (49, 54, 0)",
    "negative pixdim": "voxel sizes (0.5, 0.5, -5) mm",
    "beyond float32": "beyond float32's range",
    "NaN affine": "non-finite affine",
    "truncated gzip": "Cannot read",
    "header nibabel repairs, 200 mm voxels": "in-plane voxel size 200 mm",
    "dangling link": "is a dangling link",
    "NaN quaternion": "has a qform (code 1) with NaN or infinite values",
    "quaternion longer than 1": "has a qform (code 1) nibabel cannot compute",
}

NIBABEL_NOISE = ("pixdim[1,2,3] should be", "sizeof_hdr should be", "setting 0 dims")


def _place(src: Path, dst: Path) -> Path:
    """``src`` at ``dst`` (a link stays a link, even a dangling one)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        dst.symlink_to(os.readlink(src))
    else:
        shutil.copy(src, dst)
    return dst


def _cli(argv, capsys, command: str, name: str, needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"pedgm {command}: error: ")]
    assert len(errors) == 1 and name in errors[0] and needle in errors[0], err
    assert "Traceback" not in err and not any(n in err for n in NIBABEL_NOISE), err


def _api(call, capsys, name: str, needle: str) -> None:
    with pytest.raises(PedgmError) as caught:
        call()
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and name in message and needle in message, message
    assert not any(n in capsys.readouterr().err for n in NIBABEL_NOISE)


def _entry_segment(bad, tmp, capsys, needle):
    _cli(["segment", str(bad), "-o", str(tmp / "o.nii.gz")], capsys, "segment", bad.name, needle)


def _entry_cohort(bad, tmp, capsys, needle):
    folder = tmp / "scans"
    placed = _place(bad, folder / "s1.nii.gz")
    _cli(["segment", str(folder), "--output-dir", str(tmp / "out")], capsys, "segment", placed.name, needle)


def _entry_bids(bad, tmp, capsys, needle):
    placed = _place(bad, tmp / "bids" / "sub-01" / "anat" / "sub-01_T2starw.nii.gz")
    _cli(["segment", "--bids", str(tmp / "bids")], capsys, "segment", placed.name, needle)
    assert not (tmp / "bids" / "derivatives" / "pedgm_kit" / "sub-01").exists()  # no empty anat/


def _entry_evaluate(bad, tmp, capsys, needle):
    good = tmp / "good.nii.gz"
    nib.save(nib.Nifti1Image(_disc(), np.diag([-0.5, 0.5, 5.0, 1.0])), good)
    _cli(["evaluate", "--pred", str(bad), "--gt", str(good)], capsys, "evaluate", bad.name, needle)


def _entry_preprocess(bad, tmp, capsys, needle):
    from pedgm_kit.datasets import Scan
    from pedgm_kit.preprocess import preprocess_scan

    _api(lambda: preprocess_scan(Scan(scan_id="s", person_id="p", image=bad)), capsys, bad.name, needle)


def _entry_viewer(bad, tmp, capsys, needle):
    from pedgm_kit.viewer._scans import ViewerScan, load_scan

    _api(lambda: load_scan(ViewerScan("s", bad), cord_margin_mm=5.0), capsys, bad.name, needle)


def _entry_correction(bad, tmp, capsys, needle):
    from pedgm_kit.annotate import CorrectionEditor

    _api(lambda: CorrectionEditor(bad, bad, output=tmp / "c.nii.gz"), capsys, bad.name, needle)


ENTRY_POINTS = {
    "pedgm segment IMAGE": _entry_segment,
    "pedgm segment FOLDER (cohort)": _entry_cohort,
    "pedgm segment --bids": _entry_bids,
    "pedgm evaluate": _entry_evaluate,
    "preprocess_scan": _entry_preprocess,
    "viewer load_scan": _entry_viewer,
    "CorrectionEditor": _entry_correction,
}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_refuses_the_same_bad_files(tmp_path, capsys, entry, case):
    bad = _bad_file(tmp_path, case)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    ENTRY_POINTS[entry](bad, tmp_path, capsys, BAD_FILES[case])
    assert {p: p.read_bytes() for p in before} == before  # inputs unchanged
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name or p.name.endswith("_gmseg.nii.gz")]


# ------------------------------------------------------------------------------------------------
# 2. a closed pipe
# ------------------------------------------------------------------------------------------------


class _ClosedPipe(io.StringIO):
    """stdout whose reader has gone (``| head -3`` after three lines)."""

    def __init__(self, lines: int):
        super().__init__()
        self.left = lines

    def write(self, text):
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= text.count("\n")
        return super().write(text)


def _masks(tmp_path) -> Path:
    mask = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(_disc(), np.diag([-0.5, 0.5, 5.0, 1.0])), mask)
    return mask


@pytest.mark.parametrize("command", ["evaluate", "slurm", "fetch"])
def test_a_closed_pipe_is_not_an_error(tmp_path, capsys, monkeypatch, command):
    mask = _masks(tmp_path)
    params = tmp_path / "p.yaml"
    params.write_text("train:\n  epochs: 2\n")
    argv = {"evaluate": ["evaluate", "--pred", str(mask), "--gt", str(mask), "--per-slice",
                         "--json", str(tmp_path / "r.json")],
            "slurm": ["slurm", "--params", str(params), "--out", str(tmp_path / "job.sbatch")],
            "fetch": ["fetch", "challenge", "gm-challenge-data"]}[command]
    monkeypatch.setattr(sys, "stdout", _ClosedPipe(lines=1 if command != "evaluate" else 3))
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    if command == "evaluate":  # the command ran to its end: outputs after the printing are written
        assert (tmp_path / "r.json").is_file()


def test_a_closed_pipe_in_a_real_process(tmp_path):
    mask = _masks(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pedgm_kit.cli", "evaluate", "--pred", str(mask), "--gt",
                             str(mask), "--per-slice"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err


# ------------------------------------------------------------------------------------------------
# 3. segment outputs: --output-dir, --csv, --bids
# ------------------------------------------------------------------------------------------------


def test_output_dir_with_one_image(tmp_path, capsys):
    image = _scan(tmp_path / "one.nii.gz")
    out = tmp_path / "out" / "deeper"
    assert main(["segment", str(image), "--output-dir", str(out)]) == 0
    written = out / "one_gmseg.nii.gz"
    assert capsys.readouterr().out.strip() == str(written)
    assert nib.load(written).shape == (80, 80, 5) and _tree(tmp_path) == [
        "one.nii.gz", "out", "out/deeper", "out/deeper/one_gmseg.nii.gz"]


def test_output_dir_is_not_left_behind_by_a_failure(tmp_path, capsys):
    bad = _bad_file(tmp_path, "100 mm voxels")
    assert main(["segment", str(bad), "--output-dir", str(tmp_path / "out")]) == 2
    _one_line(capsys, "segment", "bad.nii.gz", "100 mm")
    assert _tree(tmp_path) == ["bad.nii.gz"]


@pytest.mark.parametrize("extra, needle", [
    (["-o", "x.nii.gz", "--output-dir", "out"], "not both"),
    (["--csv", "summary.csv"], "--csv is the summary table of several images"),
])
def test_segment_options_refused_not_ignored(tmp_path, capsys, extra, needle):
    image = _scan(tmp_path / "one.nii.gz")
    assert main(["segment", str(image), *[e if e.startswith("-") else str(tmp_path / e) for e in extra]]) == 2
    _one_line(capsys, "segment", needle)
    assert _tree(tmp_path) == ["one.nii.gz"]


def test_existing_csv_needs_overwrite(tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a", "b"):
        _scan(folder / f"{name}.nii.gz")
    csv = tmp_path / "existing.csv"
    csv.write_text("precious\n")
    assert main(["segment", str(folder), "--csv", str(csv)]) == 2
    _one_line(capsys, "segment", "existing.csv", "--overwrite")
    assert csv.read_text() == "precious\n" and _tree(folder) == ["a.nii.gz", "b.nii.gz"]  # before any work


def _small_bids(root: Path) -> Path:
    """sub-01: an uncompressed .nii; sub-02: a link to nowhere; sub-03: a scan with 100 mm voxels."""
    for folder in ("sub-01/anat", "sub-02/anat", "sub-03/ses-1/anat"):
        (root / folder).mkdir(parents=True)
    _scan(root / "sub-01" / "anat" / "sub-01_T2starw.nii")
    (root / "sub-02" / "anat" / "sub-02_T2starw.nii.gz").symlink_to(root / "nowhere.nii.gz")
    _scan(root / "sub-03" / "ses-1" / "anat" / "sub-03_ses-1_T2starw.nii.gz", affine=np.diag([-100, 100, 5.0, 1]))
    return root


def test_bids_cohort_nii_dangling_links_failed_subjects_and_output_options(tmp_path, capsys):
    root = _small_bids(tmp_path / "bids")
    out, csv = tmp_path / "deriv", tmp_path / "summary.csv"
    assert main(["segment", "--bids", str(root), "--output-dir", str(out), "--csv", str(csv)]) == 2
    stdout, err = capsys.readouterr()
    assert f"3 scans: 1 segmented, 0 skipped (output exists), 2 failed; summary: {csv}" in stdout
    table = pd.read_csv(csv)
    assert [Path(f).name for f in table["file"]] == ["sub-01_T2starw.nii", "sub-02_T2starw.nii.gz",
                                                     "sub-03_ses-1_T2starw.nii.gz"]
    assert table["status"].tolist() == ["ok", "failed", "failed"]
    assert "dangling link" in table["error"].iloc[1] and "100 mm" in table["error"].iloc[2]
    assert (out / "sub-01" / "anat" / "sub-01_T2starw_gmseg.nii").is_file()
    assert (out / "dataset_description.json").is_file()
    assert not (out / "sub-02").exists() and not (out / "sub-03").exists()  # failed subjects: no empty anat/
    assert not (root / "derivatives").exists()  # --output-dir replaced it
    assert len([line for line in err.splitlines() if line.startswith("pedgm segment: error: ")]) == 2


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_discovery_lists_uncompressed_images_and_reports_dangling_links(tmp_path):
    from pedgm_kit.datasets import discover_bids

    root = _small_bids(tmp_path / "bids")
    (root / "sub-03").rename(tmp_path / "elsewhere")  # discovery does not read voxels: keep two subjects
    index = discover_bids(root, labelled_runs_only=False, validate=False)
    assert [s.image.name for s in index.scans] == ["sub-01_T2starw.nii"]
    assert any("point nowhere" in w and "sub-02_T2starw.nii.gz" in w for w in index.warnings)


@pytest.mark.filterwarnings("ignore::UserWarning")  # no gray matter in a synthetic disc
def test_uncertainty_rerun_writes_the_missing_maps(tmp_path, challenge_segmenter):
    from pedgm_kit.segment import segment_files, uncertainty_paths

    image = _scan(tmp_path / "s.nii.gz")
    first = segment_files([image], model=challenge_segmenter, progress=False)
    output = Path(first["output"].iloc[0])
    mask = output.read_bytes()
    again = segment_files([image], model=challenge_segmenter, progress=False, uncertainty="tta")
    assert again["status"].tolist() == ["ok"]
    assert all(p.is_file() for p in uncertainty_paths(output)) and output.read_bytes() == mask  # mask kept
    third = segment_files([image], model=challenge_segmenter, progress=False, uncertainty="tta")
    assert third["status"].tolist() == ["skipped"]
    uncertainty_paths(output)[1].unlink()  # one of the two left: refuse rather than guess
    fourth = segment_files([image], model=challenge_segmenter, progress=False, uncertainty="tta")
    assert fourth["status"].tolist() == ["failed"] and "--overwrite" in fourth["error"].iloc[0]


# ------------------------------------------------------------------------------------------------
# 5. parameter files
# ------------------------------------------------------------------------------------------------

PARAM_CASES = {
    "100 folds, 6 persons": ("data:\n  cv_folds: 100\n", ["'data.cv_folds' is 100", "6 person(s)"]),
    "100 training persons": ("pipeline:\n  train_persons: [1, 100]\n",
                             ["'pipeline.train_persons' asks for 100", "at most 4 can train"]),
    "train section, 100 persons": ("train:\n  train_persons: 100\n", ["'train.train_persons' asks for 100"]),
    "no variants": ("pipeline:\n  variants: []\n", ["'pipeline.variants' must be a non-empty list"]),
    "no curve variants": ("pipeline:\n  curve_variants: []\n", ["'pipeline.curve_variants' must be a non-empty"]),
    "cord scale out of range": ("preprocess:\n  cord_scale: 3.0\n", ["'preprocess.cord_scale' must be", "0.4-1.6"]),
    "cord scale word": ("evaluate:\n  cord_scale: big\n", ["'evaluate.cord_scale' must be"]),
    "no sections": ("epochs: 3\nbatch_size: 2\n", ["no section", "preprocess, data, augment, train, evaluate, pipeline",
                                                   "'epochs', 'batch_size' belong under 'train:'"]),
    "no sections, unknown keys": ("colour: blue\n", ["no section", "put each key under its section"]),
}


@pytest.mark.parametrize("case", list(PARAM_CASES))
@pytest.mark.parametrize("command", ["run", "train", "slurm"])
def test_parameter_files_checked_against_the_dataset(tmp_path, capsys, case, command):
    text, needles = PARAM_CASES[case]
    params = tmp_path / "p.yaml"
    params.write_text(text)
    before = _tree(tmp_path)
    argv = {"run": ["run", "--params", str(params), "--outputs", str(tmp_path / "out")],
            "train": ["train", "--params", str(params), "--all"],
            "slurm": ["slurm", "--params", str(params), "--out", str(tmp_path / "job.sbatch")]}[command]
    assert main(argv) == 2
    _one_line(capsys, command, "p.yaml", *needles)
    assert _tree(tmp_path) == before  # no array script with --array=0-399


@pytest.mark.parametrize("value", ["0.8", "1", "auto", "''"])
def test_cord_scale_in_a_parameter_file_as_on_the_command_line(tmp_path, value):
    from pedgm_kit.params import load_params

    params = tmp_path / "p.yaml"
    params.write_text(f"preprocess:\n  cord_scale: {value}\nevaluate:\n  cord_scale: {value}\n")
    assert load_params(params)["preprocess"]["cord_scale"] in (0.8, 1, "auto", "")


def test_a_possible_plan_still_passes(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("data:\n  cv_folds: 3\npipeline:\n  train_persons: [1, 4, all]\n  variants: [scratch_noaug]\n")
    assert main(["slurm", "--params", str(params), "--out", str(tmp_path / "job.sbatch")]) == 0
    assert "--array=0-" in (tmp_path / "job.sbatch").read_text()


# ------------------------------------------------------------------------------------------------
# 6. null weights metadata, 7. absurd batch sizes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["threshold", "input_size", "spacing_mm", "filters", "mean_train", "std_train"])
@pytest.mark.parametrize("command", ["segment", "export"])
def test_null_metadata_is_a_value(tmp_path, capsys, key, command):
    weights = _weights_copy(tmp_path, {key: None})
    image = _scan(tmp_path / "s.nii.gz")
    (tmp_path / "out").mkdir()
    before = _tree(tmp_path)
    argv = (["segment", str(image), "--model", str(weights)] if command == "segment"
            else ["export", "--model", str(weights), "--out", str(tmp_path / "out")])
    assert main(argv) == 2
    _one_line(capsys, command, "w.json", f"{key}=null (must be")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("size", ["99999999999999999999999", "513", "0"])
@pytest.mark.parametrize("engine", ["xla", "keras"])
def test_batch_size_is_bounded(tmp_path, capsys, size, engine):
    image = _scan(tmp_path / "s.nii.gz")
    assert main(["segment", str(image), "--engine", engine, "--batch-size", size]) == 2
    _one_line(capsys, "segment", "batch", size)
    assert _tree(tmp_path) == ["s.nii.gz"]


# ------------------------------------------------------------------------------------------------
# 8. messages
# ------------------------------------------------------------------------------------------------


def test_output_errors_name_the_users_file_not_the_temporary_one(tmp_path, capsys):
    mask = _masks(tmp_path)
    long_name = "r" * 240 + ".json"  # fits the folder, but its temporary name ('.<name>.XXXX.part.json') does not
    assert main(["evaluate", "--pred", str(mask), "--gt", str(mask), "--json", str(tmp_path / long_name)]) == 2
    err = _one_line(capsys, "evaluate", long_name)
    assert ".part" not in err
    assert _tree(tmp_path) == ["m.nii.gz"]


@pytest.mark.parametrize("command", ["evaluate", "export", "slurm", "segment"])
def test_a_file_where_a_folder_should_be(tmp_path, capsys, command):
    mask = _masks(tmp_path)
    (tmp_path / "f.txt").write_text("a file\n")
    params = tmp_path / "p.yaml"
    params.write_text("train:\n  epochs: 2\n")
    argv = {"evaluate": ["evaluate", "--pred", str(mask), "--gt", str(mask), "--json", str(tmp_path / "f.txt" / "r.json")],
            "export": ["export", "--model", "challenge", "--out", str(tmp_path / "f.txt")],
            "slurm": ["slurm", "--params", str(params), "--out", str(tmp_path / "f.txt" / "job.sbatch")],
            "segment": ["segment", str(mask), "--output-dir", str(tmp_path / "f.txt")]}[command]
    assert main(argv) == 2
    err = _one_line(capsys, command, "f.txt", "is a file, not a folder")
    assert "does not exist" not in err


# ------------------------------------------------------------------------------------------------
# 9. decisions: negative pixdim (refused, see family 1), a tiny threshold, an empty cord mask
# ------------------------------------------------------------------------------------------------


def test_a_tiny_threshold_warns(tmp_path, capsys):
    image = _scan(tmp_path / "s.nii.gz")
    assert main(["segment", str(image), "-t", "1e-300"]) == 0
    err = capsys.readouterr().err
    assert "pedgm segment: warning: threshold 1e-300 is below 0.01: almost every voxel" in err


def test_empty_cord_mask_warning_names_the_file(tmp_path, capsys):
    image = _scan(tmp_path / "s.nii.gz")
    cord = tmp_path / "empty_cord.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((80, 80, 5), np.uint8), nib.load(image).affine), cord)
    assert main(["segment", str(image), "--cord-mask", str(cord)]) == 0
    err = capsys.readouterr().err
    assert f"pedgm segment: warning: {cord} (cord mask): the mask is empty; windows are centred on the image centre" \
        in err
