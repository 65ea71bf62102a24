"""`pedgm segment` end to end, and every bad-input path: one-line error, exit 2, no output left."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.cli import main
from pedgm_kit.registry import fetch_group


@pytest.fixture
def t2s_copy(tmp_path, t2s_dir):
    path = tmp_path / "t2s.nii.gz"
    shutil.copy(t2s_dir / "t2s.nii.gz", path)
    return path


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("pedgm segment: error: ")
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.slow
def test_segment_default_output_next_to_input(t2s_copy, capsys):
    assert main(["segment", str(t2s_copy)]) == 0
    out = t2s_copy.with_name("t2s_gmseg.nii.gz")
    assert capsys.readouterr().out.strip() == str(out)
    seg, src = nib.load(out), nib.load(t2s_copy)
    assert seg.shape == src.shape and np.array_equal(seg.affine, src.affine)
    assert sorted(p.name for p in t2s_copy.parent.iterdir()) == ["t2s.nii.gz", "t2s_gmseg.nii.gz"]


@pytest.mark.slow
def test_segment_with_model_path_and_soft_output(tmp_path, t2s_copy, capsys):
    weights = fetch_group("challenge")
    out = tmp_path / "soft.nii"
    assert main(["segment", str(t2s_copy), "-o", str(out), "--model", str(weights), "--threshold", "0"]) == 0
    assert nib.load(out).get_data_dtype() == np.float32


def _bad_image(tmp_path, kind):
    path = tmp_path / f"{kind}.nii.gz"
    rng = np.random.default_rng(0)
    if kind == "text":
        path.write_text("not a NIfTI\n")
        return path, "as a NIfTI"
    data = {
        "2d": rng.normal(size=(20, 20)),
        "4d": rng.normal(size=(20, 20, 3, 2)),
        "nan": np.where(rng.random((20, 20, 3)) < 0.01, np.nan, 1.0),
        "constant": np.full((20, 20, 3), 5.0),
    }[kind].astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path, {"2d": "got 2D", "4d": "got 4D", "nan": "NaN", "constant": "constant"}[kind]


@pytest.mark.parametrize("kind", ["text", "2d", "4d", "nan", "constant"])
def test_bad_images(tmp_path, capsys, kind):
    path, needle = _bad_image(tmp_path, kind)
    assert main(["segment", str(path)]) == 2
    _one_line_error(capsys, path.name, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_missing_input(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "absent.nii.gz")]) == 2
    _one_line_error(capsys, "absent.nii.gz", "No such file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncated", "filters"])
def test_bad_weights(tmp_path, t2s_copy, capsys, kind):
    src = fetch_group("challenge")
    weights = tmp_path / "w.hdf5"
    if kind == "truncated":
        weights.write_bytes(src.read_bytes()[:100_000])
        needle = "not a readable Keras HDF5 weights file"
    else:  # large (64-filter) weights announced as a 32-filter model
        shutil.copy(fetch_group("large"), weights)
        (tmp_path / "w.json").write_text(json.dumps({"filters": 32}))
        needle = "says filters=32 but the weights have 64"
    assert main(["segment", str(t2s_copy), "--model", str(weights)]) == 2
    _one_line_error(capsys, "w.hdf5", needle)
    assert not t2s_copy.with_name("t2s_gmseg.nii.gz").exists()


def test_output_in_missing_folder(tmp_path, t2s_copy, capsys):
    assert main(["segment", str(t2s_copy), "-o", str(tmp_path / "nowhere" / "o.nii.gz")]) == 2
    _one_line_error(capsys, "Output folder does not exist", "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_existing_output_without_overwrite(tmp_path, t2s_copy, capsys):
    out = tmp_path / "o.nii.gz"
    out.write_bytes(b"precious")
    assert main(["segment", str(t2s_copy), "-o", str(out)]) == 2
    _one_line_error(capsys, "o.nii.gz", "--overwrite")
    assert out.read_bytes() == b"precious"


def test_bad_threshold(t2s_copy, capsys):
    assert main(["segment", str(t2s_copy), "--threshold", "1.5"]) == 2
    _one_line_error(capsys, "threshold must be a number in [0, 1), got 1.5")
    assert not t2s_copy.with_name("t2s_gmseg.nii.gz").exists()


def test_verbose_shows_traceback(tmp_path, capsys):
    assert main(["--verbose", "segment", str(tmp_path / "absent.nii.gz")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_os_errors_are_one_line(tmp_path, t2s_dir, capsys):
    (tmp_path / "adir").mkdir()
    pred = t2s_dir / "t2s_gmseg_manual.nii.gz"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(pred), "--json", str(tmp_path / "adir"), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pedgm evaluate: error: ") and "adir" in err
