"""Hostile input, family by family: every case one line naming the file or key, exit 2, nothing left behind.

The families of the outside fuzz of the command line: (1) parameter files, (2) implausible geometry,
(3) weights and their metadata, (4) paths and generated scripts, (5) error paths that leaked
(RGB/complex images, non-binary cord masks, NaN training arrays, bad seeds, empty output names,
``--verbose`` placement, Ctrl-C, a full disk).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.cli import main
from pedgm_kit.registry import fetch_group

REPO = Path(__file__).resolve().parents[2]


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _one_line(capsys, command: str, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"pedgm {command}: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _scan(path: Path, *, affine=None, shape=(80, 80, 5), data=None, dtype=np.float32, zooms=None,
          qform_only: bool = False, raw_sform: bool = False, noise: bool = False) -> Path:
    """A small axial 'scan' (a bright disc per slice) with the geometry asked for."""
    if data is None:
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        disc = ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (shape[0] / 6) ** 2).astype(np.float32)
        data = np.repeat((100 + 300 * disc)[..., None], shape[2], axis=2).astype(dtype)
    if noise:
        data = np.random.default_rng(0).normal(100, 10, size=shape).astype(dtype)
    affine = np.diag([-0.5, 0.5, 5.0, 1.0]) if affine is None else np.asarray(affine, float)
    if raw_sform:  # an affine nibabel would refuse to write (singular, NaN): put it in the sform as is
        img = nib.Nifti1Image(data, np.eye(4))
        img.header.set_sform(affine, code=2)
        img.header.set_qform(None, code=0)
        img.update_header = lambda: None
        nib.save(img, path)
        return path
    img = nib.Nifti1Image(data, affine)
    if qform_only:  # the affine comes from pixdim and the quaternion, as from many converters
        img.set_qform(affine, code=1)
        img.set_sform(None, code=0)
    if zooms is not None:
        img.header["pixdim"][1:4] = zooms  # as written, unrepaired (set_zooms would refuse 0)
        img.update_header = lambda: None  # and saved so
    nib.save(img, path)
    return path


# ------------------------------------------------------------------------------------------------
# 1. parameter files
# ------------------------------------------------------------------------------------------------

PARAM_CASES = {
    "misspelt section": ("trainn:\n  epochs: 2\n", ["unknown section 'trainn'", "did you mean 'train'"]),
    "empty file": ("", ["parameter file is empty"]),
    "only a comment": ("# nothing here\n", ["parameter file is empty"]),
    "misspelt key": ("train:\n  batchsize: 4\n", ["unknown key 'train.batchsize'", "did you mean 'batch_size'"]),
    "two bad keys at once": ("train:\n  epoch: 2\n  lerning_rate: 0.1\n",
                             ["2 problem(s)", "'train.epoch'", "'epochs'", "'train.lerning_rate'", "'learning_rate'"]),
    "duplicate key": ("train:\n  epochs: 2\n  epochs: 3\n", ["duplicate key 'epochs'", "lines 2 and 3"]),
    "duplicate section": ("train:\n  epochs: 2\ntrain:\n  epochs: 3\n", ["duplicate key 'train'"]),
    "string for an integer": ("train:\n  epochs: '3'\n", ["'train.epochs' must be an integer"]),
    "bool for an integer": ("train:\n  batch_size: true\n", ["'train.batch_size' must be an integer"]),
    "negative learning rate": ("train:\n  learning_rate: -0.001\n", ["'train.learning_rate' must be a positive number"]),
    "zero epochs": ("train:\n  epochs: 0\n", ["'train.epochs' must be a positive integer"]),
    "unknown choice": ("train:\n  freeze: all\n", ["'train.freeze' must be 'none' or 'early'"]),
    "fractions not summing to 1": ("data:\n  fractions: [0.5, 0.2, 0.2]\n", ["'data.fractions' must be three positive"]),
    "alpha out of range": ("evaluate:\n  alpha: 1.5\n", ["'evaluate.alpha' must be a number in (0, 1)"]),
    "unknown metric": ("evaluate:\n  stat_metrics: [DSC, DICE]\n", ["'evaluate.stat_metrics'"]),
    "section not a mapping": ("train: 3\n", ["section 'train' must be a mapping"]),
    "a list at the top": ("- train\n", ["expected a mapping"]),
    "not YAML": ("train: [1, 2\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", list(PARAM_CASES))
@pytest.mark.parametrize("command", ["run", "train", "slurm"])
def test_parameter_files_are_validated_before_anything_runs(tmp_path, capsys, case, command):
    text, needles = PARAM_CASES[case]
    params = tmp_path / "p.yaml"
    params.write_text(text)
    before = _tree(tmp_path)
    argv = {"run": ["run", "--params", str(params), "--outputs", str(tmp_path / "out")],
            "train": ["train", "--params", str(params), "--all"],
            "slurm": ["slurm", "--params", str(params), "--out", str(tmp_path / "job.sbatch")]}[command]
    assert main(argv) == 2
    _one_line(capsys, command, "p.yaml", *needles)
    assert _tree(tmp_path) == before


def test_non_utf8_parameter_file(tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_bytes("train:\n  output_dir: caf\xe9\n".encode("latin-1"))
    assert main(["run", "--params", str(params), "--outputs", str(tmp_path / "out")]) == 2
    _one_line(capsys, "run", "p.yaml", "not a UTF-8 text file")


def test_the_shipped_parameter_files_are_valid():
    from pedgm_kit.params import load_params

    for path in sorted((REPO / "parameters").glob("*.yaml")):
        assert load_params(path), path


# ------------------------------------------------------------------------------------------------
# 2. geometry
# ------------------------------------------------------------------------------------------------


def _rotation(deg: float) -> np.ndarray:
    """An affine tilted ``deg`` degrees about the L-R axis (an oblique axial acquisition)."""
    t = np.radians(deg)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.5, 0.5, 5.0])
    return affine


GEOMETRY_CASES = {
    "zero voxel size": (dict(zooms=(0.5, 0.0, 5.0), qform_only=True), "voxel sizes (0.5, 0, 5) mm in its header"),
    "negative voxel size": (dict(zooms=(0.5, 0.5, -5.0), qform_only=True), "voxel sizes (0.5, 0.5, -5) mm"),
    "NaN pixdim": (dict(zooms=(0.5, np.nan, 5.0), qform_only=True), "voxel sizes (0.5, nan, 5) mm"),
    "NaN in the affine": (dict(affine=np.diag([0.5, np.nan, 5.0, 1.0]), raw_sform=True), "non-finite affine"),
    "singular affine": (dict(affine=np.diag([0.5, 0.5, 0.0, 1.0]), raw_sform=True), "singular affine"),
    "rank-2 affine": (dict(affine=np.array([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 1]]),
                           raw_sform=True), "singular affine"),
    "0.001 mm voxels": (dict(affine=np.diag([-0.001, 0.001, 5.0, 1.0])), "in-plane voxel size 0.001 mm"),
    "200 mm voxels": (dict(affine=np.diag([-200, 200, 5.0, 1.0])), "in-plane voxel size 200 mm"),
    "1 km slices": (dict(affine=np.diag([-0.5, 0.5, 1000.0, 1.0])), "slice thickness 1000 mm"),
    "45 degrees oblique": (dict(affine=_rotation(45)), "its slices are 45 degrees off axial"),
    "60 degrees oblique": (dict(affine=_rotation(60)), "its slices are 60 degrees off axial"),
    "isotropic, 45 degrees": (dict(affine=_rotation(45) @ np.diag([1, 1, 0.1, 1])), "ambiguous"),
    "a 1 mm field of view": (dict(shape=(4, 4, 5), affine=np.diag([-0.25, 0.25, 5, 1])), "field of view 1 x 1 mm"),
    "a line, not a slice": (dict(shape=(1, 80, 5), noise=True), "voxel(s) in-plane"),
}


@pytest.mark.parametrize("case", list(GEOMETRY_CASES))
def test_implausible_geometry_is_refused(tmp_path, capsys, case):
    kwargs, needle = GEOMETRY_CASES[case]
    path = _scan(tmp_path / "g.nii.gz", **kwargs)
    assert main(["segment", str(path)]) == 2
    _one_line(capsys, "segment", "g.nii.gz", needle)
    assert _tree(tmp_path) == ["g.nii.gz"]


@pytest.mark.slow
def test_moderately_oblique_image_is_segmented_with_a_warning(tmp_path):
    from pedgm_kit.geometry import GeometryWarning
    from pedgm_kit.segment import segment_image

    path = _scan(tmp_path / "tilted.nii.gz", affine=_rotation(25))
    with pytest.warns(GeometryWarning, match="tilted.nii.gz: the image is oblique: its axes are up to 25 degrees off"):
        seg = segment_image(path)
    assert seg.shape == (80, 80, 5)


# ------------------------------------------------------------------------------------------------
# 3. weights and metadata
# ------------------------------------------------------------------------------------------------


def _weights_copy(tmp_path: Path, meta: dict | None = None, *, nan_in: str | None = None) -> Path:
    src = fetch_group("challenge")
    weights = tmp_path / "w.hdf5"
    shutil.copy(src, weights)
    base = json.loads(src.with_suffix(".json").read_text())
    base.update(meta or {})
    (tmp_path / "w.json").write_text(json.dumps(base))
    if nan_in:
        with h5py.File(weights, "r+") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            group = root[nan_in]
            name = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]][0]
            data = group[name][()]
            data.flat[0] = np.nan
            group[name][()] = data
    return weights


WEIGHT_CASES = {
    "NaN kernel": (dict(nan_in="conv2d_1"), "weight 'conv2d_1/kernel:0' holds 1 NaN"),
    "NaN in the last layer": (dict(nan_in="predictions"), "'predictions/kernel:0' holds 1 NaN"),
    "text filters": (dict(meta={"filters": "abc"}), "filters='abc' (must be a positive integer)"),
    "negative input size": (dict(meta={"input_size": -1}), "input_size=-1"),
    "threshold above 1": (dict(meta={"threshold": 1.5}), "threshold=1.5 (must be a number in [0, 1))"),
    "zero spacing": (dict(meta={"spacing_mm": 0}), "spacing_mm=0"),
    "text mean": (dict(meta={"mean_train": "x"}), "mean_train='x' (must be a finite number)"),
    "zero std": (dict(meta={"std_train": 0}), "std_train=0 (must be a positive number)"),
    "boolean filters": (dict(meta={"filters": True}), "filters=True"),
    "unknown normalisation": (dict(meta={"normalisation": "slice"}), "normalisation='slice'"),
    "two bad keys": (dict(meta={"spacing_mm": -1, "threshold": "high"}), "spacing_mm=-1"),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
@pytest.mark.parametrize("command", ["segment", "export"])
def test_bad_weights_and_metadata(tmp_path, capsys, case, command):
    kwargs, needle = WEIGHT_CASES[case]
    weights = _weights_copy(tmp_path, **kwargs)
    image = _scan(tmp_path / "s.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    before = _tree(tmp_path)
    argv = (["segment", str(image), "--model", str(weights)] if command == "segment"
            else ["export", "--model", str(weights), "--out", str(out)])
    assert main(argv) == 2
    _one_line(capsys, command, "w.", needle)
    assert _tree(tmp_path) == before


# ------------------------------------------------------------------------------------------------
# 4. paths and generated scripts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["../../x", "..", ".", "/tmp/abs", "a/b", "-rf", ".hidden", "a\nb", ""])
def test_run_id_cannot_leave_outputs(tmp_path, capsys, run_id):
    params = tmp_path / "p.yaml"
    params.write_text((REPO / "parameters" / "demo.yaml").read_text())
    before = _tree(tmp_path)
    assert main(["run", "--params", str(params), "--outputs", str(tmp_path / "outs"), f"--run-id={run_id}"]) == 2
    _one_line(capsys, "run", "must be a plain folder name")
    assert _tree(tmp_path) == before


def test_output_may_not_be_the_input(tmp_path, capsys):
    image = _scan(tmp_path / "s.nii.gz")
    original = image.read_bytes()
    for target in (image, tmp_path / "." / "s.nii.gz"):
        assert main(["segment", str(image), "-o", str(target), "--overwrite"]) == 2
        _one_line(capsys, "segment", "is the input file", "s.nii.gz")
    link = tmp_path / "link.nii.gz"
    link.symlink_to(image)
    assert main(["segment", str(image), "-o", str(link), "--overwrite"]) == 2
    _one_line(capsys, "segment", "is the input file")
    assert image.read_bytes() == original


def test_json_may_not_be_an_input(tmp_path, capsys):
    mask = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 3), np.uint8), np.eye(4)), mask)
    for target in (mask,):
        assert main(["evaluate", "--pred", str(mask), "--gt", str(mask), "--json", str(target), "--overwrite"]) == 2
        _one_line(capsys, "evaluate", "--json")
    (tmp_path / "m.json").write_text("{}")
    assert main(["evaluate", "--pred", str(mask), "--gt", str(mask), "--json", str(tmp_path / "m.json")]) == 2
    _one_line(capsys, "evaluate", "m.json", "--overwrite")


@pytest.mark.parametrize("name", [".nii.gz", ".nii", "  .nii.gz", "out.png", "out"])
def test_output_names_without_a_stem_or_ending(tmp_path, capsys, name):
    image = _scan(tmp_path / "s.nii.gz")
    assert main(["segment", str(image), "-o", str(tmp_path / name)]) == 2
    _one_line(capsys, "segment")
    assert _tree(tmp_path) == ["s.nii.gz"]


def test_dangling_link_at_the_output_needs_overwrite(tmp_path, capsys):
    image = _scan(tmp_path / "s.nii.gz")
    link = tmp_path / "o.nii.gz"
    link.symlink_to(tmp_path / "gone.nii.gz")
    assert main(["segment", str(image), "-o", str(link)]) == 2
    _one_line(capsys, "segment", "o.nii.gz", "dangling link")
    assert link.is_symlink() and not (tmp_path / "gone.nii.gz").exists()


SLURM_CASES = {
    "newline in --mem": (["--mem", "32G\nrm -rf ~"], "--mem must be"),
    "shell in --mem": (["--mem", "32G; echo hi"], "--mem must be"),
    "bad --time": (["--time", "four hours"], "--time must be"),
    "newline in --time": (["--time", "04:00:00\n#SBATCH --x"], "--time must be"),
    "space in --partition": (["--partition", "gpu; rm"], "--partition may hold only"),
    "quote in --account": (["--account", "a'b"], "--account may hold only"),
    "duplicate variants": (["--variants", "pretrained_aug", "pretrained_aug"], "given twice"),
    "unknown variant": (["--variants", "pretrained"], "unknown variant 'pretrained'"),
    "negative gpus": (["--gpus", "-1"], "--gpus must be"),
}


@pytest.mark.parametrize("case", list(SLURM_CASES))
def test_slurm_values_are_checked(tmp_path, capsys, case):
    extra, needle = SLURM_CASES[case]
    params = tmp_path / "p.yaml"
    params.write_text("train:\n  epochs: 2\n")
    out = tmp_path / "job.sbatch"
    assert main(["slurm", "--params", str(params), "--out", str(out), *extra]) == 2
    _one_line(capsys, "slurm", needle)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# 5. error paths that leaked
# ------------------------------------------------------------------------------------------------


def test_rgb_and_complex_images(tmp_path, capsys):
    rgb_type = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb = np.zeros((20, 20, 3), dtype=rgb_type)
    nib.save(nib.Nifti1Image(rgb, np.diag([0.5, 0.5, 5, 1])), tmp_path / "rgb.nii.gz")
    cplx = (np.ones((20, 20, 3)) + 1j).astype(np.complex64)
    nib.save(nib.Nifti1Image(cplx, np.diag([0.5, 0.5, 5, 1])), tmp_path / "cplx.nii.gz")
    for name, needle in (("rgb.nii.gz", "RGB voxels"), ("cplx.nii.gz", "complex voxels")):
        assert main(["segment", str(tmp_path / name)]) == 2
        _one_line(capsys, "segment", name, needle)
    assert _tree(tmp_path) == ["cplx.nii.gz", "rgb.nii.gz"]


def test_non_binary_cord_mask(tmp_path, capsys):
    image = _scan(tmp_path / "s.nii.gz")
    cord = np.asanyarray(nib.load(image).dataobj) / 400.0  # 0.25 and 1: a soft mask
    nib.save(nib.Nifti1Image(cord.astype(np.float32), nib.load(image).affine), tmp_path / "cord.nii.gz")
    assert main(["segment", str(image), "--cord-mask", str(tmp_path / "cord.nii.gz")]) == 2
    _one_line(capsys, "segment", "cord.nii.gz", "cord mask must hold only 0 and 1")
    assert _tree(tmp_path) == ["cord.nii.gz", "s.nii.gz"]


def test_nan_training_arrays(tmp_path, capsys):
    from pedgm_kit.data_creation import save_npz
    from pedgm_kit.exceptions import ImageContentError
    from pedgm_kit.train import load_arrays

    images = np.full((4, 32, 32), np.nan, np.float32)
    save_npz({"images": images, "masks": np.zeros((4, 32, 32), np.uint8)}, tmp_path / "train.npz")
    with pytest.raises(ImageContentError, match=r"train\.npz: 4096 image values are NaN"):
        load_arrays(tmp_path, "train")
    save_npz({"images": np.zeros((4, 32, 32), np.float32), "masks": np.full((4, 32, 32), 2, np.uint8)},
             tmp_path / "val.npz")
    with pytest.raises(ImageContentError, match=r"val\.npz: masks must hold only 0 and 1"):
        load_arrays(tmp_path, "val")


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_bad_seed_with_tta(tmp_path, capsys, seed):
    image = _scan(tmp_path / "s.nii.gz")
    assert main(["segment", str(image), "--tta", "--seed", seed]) == 2
    _one_line(capsys, "segment", "seed must be an integer in [0, 2**32)")
    assert _tree(tmp_path) == ["s.nii.gz"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_command(tmp_path, capsys, where):
    argv = ["segment", str(tmp_path / "absent.nii.gz")]
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("pedgm segment: error: ")


def _restore_sigint() -> None:
    # a test run started in the background by a non-interactive shell (`.ci/run &`) inherits SIGINT
    # ignored, and Python then never raises KeyboardInterrupt: give the child the terminal's default
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _pedgm(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "pedgm_kit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=_restore_sigint, **kwargs)


@pytest.mark.slow
def test_ctrl_c_during_cohort_segmentation(tmp_path, gm_challenge):
    """A real SIGINT while scans are being segmented: one line, exit 130, only complete files left."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for path in sorted(gm_challenge.glob("sub-*/anat/*_T2starw.nii.gz")):
        shutil.copy(path, folder / path.name)
    proc = _pedgm("segment", str(folder), "--tta")
    deadline = time.time() + 240
    while time.time() < deadline and not list(folder.glob("*_gmseg.nii.gz")):
        time.sleep(0.2)  # wait until the first scan is written: segmentation is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if "segmenting" not in line]  # the progress bar
    assert lines[-1] == "pedgm segment: interrupted; no output was written" or lines[-1].startswith("pedgm segment: interrupted")
    assert "Traceback" not in err
    assert not [p for p in folder.iterdir() if ".part" in p.name]  # no partial file
    for out in folder.glob("*_gmseg.nii.gz"):  # what was written is complete
        assert nib.load(out).get_fdata().shape == nib.load(folder / out.name.replace("_gmseg", "")).shape


def test_a_full_disk_names_the_file(tmp_path, t2s_dir):
    """Writes past the file-size limit fail like a full disk; the message names the output, nothing is left."""
    image = tmp_path / "s.nii.gz"
    shutil.copy(t2s_dir / "t2s.nii.gz", image)
    out = tmp_path / "o.nii.gz"
    warm = tmp_path / "warm.nii.gz"  # a first run compiles everything; the limit then hits only the output
    code = (
        "import resource, signal, sys; from pedgm_kit.cli import main; "
        f"assert main(['segment', {str(image)!r}, '-o', {str(warm)!r}]) == 0; "
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200)); "
        f"sys.exit(main(['segment', {str(image)!r}, '-o', {str(out)!r}]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    err = done.stderr.strip()
    warm.unlink()
    assert done.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("pedgm segment: error: "), err
    assert "o.nii.gz" in err and "File too large" in err
    assert _tree(tmp_path) == ["s.nii.gz"]
