"""Generated hostile input (Hypothesis): NIfTI headers, parameter files and weights metadata.

The property, for every generated input: the command exits 0 with a correct output, or exits 2 with
one error line that names the file (or key), no traceback, nothing partial and the input unchanged.
The command line is called in-process (``pedgm_kit.cli.main``), so thousands of examples are
affordable; the network never runs: an image the input layer accepts is scored by ``pedgm
evaluate`` (no network), and ``pedgm segment`` is run only on images the layer refuses, to check it
refuses them before the network, with the same message.

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (default; derandomized, a few hundred examples in all) and
``fuzz`` (``make fuzz``: thousands, random). ``pytest --hypothesis-show-statistics`` counts them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pedgm_kit.cli import main
from pedgm_kit.exceptions import PedgmError, WeightsError

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much], database=None)
#: Examples per test: CI (derandomized: the same examples on every run) and ``make fuzz``.
EXAMPLES = {"ci": {"nifti": 200, "params": 200, "weights": 100},
            "fuzz": {"nifti": 5000, "params": 4000, "weights": 3000}}
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("fuzz", **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in EXAMPLES:
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE must be one of {', '.join(EXAMPLES)}; got {PROFILE!r}")


def _profile(kind: str):
    return settings(settings.get_profile(PROFILE), max_examples=EXAMPLES[PROFILE][kind])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def _example_dir(base: Path):
    folder = Path(tempfile.mkdtemp(dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_refusal(code: int, err: str, command: str, *names: str) -> str:
    """Exit 2; exactly one error line naming one of ``names``; other lines only one-line warnings."""
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"pedgm {command}: error: ")]
    assert len(errors) == 1, err
    assert all(line.startswith(f"pedgm {command}: warning: ") for line in lines if line not in errors), err
    assert any(name in errors[0] for name in names), (names, errors[0])
    return errors[0]


# ------------------------------------------------------------------------------------------------
# NIfTI headers
# ------------------------------------------------------------------------------------------------

WEIRD = [0.0, -0.0, -1.0, -0.5, 1e-30, 1e-3, 0.04, 0.25, 0.5, 1.0, 5.0, 6.0, 100.0, 1e30, 3.5e38,
         float("nan"), float("inf"), float("-inf")]
DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64, np.complex64]


def _numbers():
    return st.one_of(st.sampled_from(WEIRD), st.floats(-10, 10, width=32), st.floats(width=32))


@st.composite
def nifti_files(draw):
    """A NIfTI file description: shape, dtype, voxels, and raw header fields written as drawn.

    Half the examples start from a plausible axial mask and change a few fields to hostile values
    (so both outcomes are exercised); the other half draw every field freely.
    """
    free = draw(st.booleans())

    def pick(plausible, hostile):
        return draw(hostile) if free or draw(st.integers(0, 5)) == 0 else draw(plausible)

    shape = (pick(st.integers(8, 12), st.integers(0, 12)), pick(st.integers(8, 12), st.integers(0, 12)),
             pick(st.integers(1, 4), st.integers(0, 4)))
    shape += pick(st.sampled_from([(), (1,)]), st.sampled_from([(), (), (1,), (2,)]))
    if free and draw(st.integers(0, 9)) == 0:
        shape = shape[: draw(st.integers(1, 2))]  # 1D / 2D
    dtype = np.dtype(pick(st.sampled_from([np.uint8, np.int16, np.float32]), st.sampled_from(DTYPES)))
    fill = pick(st.just("binary"), st.sampled_from(["binary", "binary", "intensity", "constant"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if fill == "binary":
        data = (rng.random(shape) < 0.4).astype(dtype)
    elif fill == "intensity":
        data = (rng.random(shape) * 200).astype(dtype)
    else:
        data = np.full(shape, draw(st.sampled_from([0, 1, 7])), dtype=dtype)
    if dtype.kind in "fc" and data.size and (free or draw(st.integers(0, 5)) == 0) and draw(st.booleans()):
        with np.errstate(all="ignore"):
            data.flat[draw(st.integers(0, data.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300]))
    sane = st.sampled_from([0.25, 0.5, 1.0])
    header = {
        "pixdim": [pick(sane, _numbers()), pick(sane, _numbers()), pick(st.sampled_from([1.0, 2.5, 5.0]), _numbers())],
        "qform_code": pick(st.sampled_from([0, 1]), st.sampled_from([0, 1, 2, 3, 4, 7])),
        "sform_code": pick(st.sampled_from([1, 2]), st.sampled_from([0, 1, 2, 3, 4, 99])),
        "quatern": [pick(st.just(0.0), st.one_of(st.floats(-1.5, 1.5), st.just(float("nan")))) for _ in range(3)],
        "qfac": pick(st.just(-1.0), st.sampled_from([1.0, -1.0, 0.0, 2.0])),
        "scl_slope": pick(st.sampled_from([0.0, 1.0]),
                          st.sampled_from([0.0, 1.0, 1.0, 2.0, -1.0, 1e38, float("nan"), float("inf")])),
        "scl_inter": pick(st.just(0.0), st.sampled_from([0.0, 0.0, 1.0, -5.0, 1e38, float("nan")])),
        "sizeof_hdr": pick(st.just(348), st.sampled_from([348, 348, 348, 100])),
    }
    srows = pick(st.sampled_from(["from pixdim", "rotated"]), st.sampled_from(["from pixdim", "rotated", "random"]))
    if srows == "from pixdim":
        sform = np.diag([*header["pixdim"], 1.0])
    elif srows == "rotated":
        t = np.radians(pick(st.floats(0, 30), st.floats(0, 90)))
        sform = np.eye(4)
        sform[:3, :3] = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]]) @ np.diag(
            [draw(sane), draw(sane), 5.0])
    else:
        sform = np.eye(4)
        sform[:3, :] = np.asarray([[draw(_numbers()) for _ in range(4)] for _ in range(3)])
    header["srow"] = sform[:3].tolist()
    header["gz"] = draw(st.booleans())
    header["corrupt"] = draw(st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), max_size=3)
                             if free and draw(st.integers(0, 5)) == 0 else st.just([]))
    return data, header


def _write(data: np.ndarray, header: dict, path: Path) -> Path:
    img = nib.Nifti1Image(data, None)
    hdr = img.header
    with np.errstate(all="ignore"):
        hdr["pixdim"][1:4] = header["pixdim"]
        hdr["pixdim"][0] = header["qfac"]
        hdr["qform_code"], hdr["sform_code"] = header["qform_code"], header["sform_code"]
        hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = header["quatern"]
        hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = header["srow"]
        hdr["scl_slope"], hdr["scl_inter"] = header["scl_slope"], header["scl_inter"]
        hdr["sizeof_hdr"] = header["sizeof_hdr"]
    img.update_header = lambda: None  # written as drawn, nothing repaired
    try:
        with np.errstate(all="ignore"), nib.imageglobals.LoggingOutputSuppressor():
            nib.save(img, path)
    except Exception:  # noqa: BLE001 - nibabel cannot write it: not an input anyone can hand us
        assume(False)
    if header["corrupt"] and not header["gz"]:
        raw = bytearray(path.read_bytes())
        for offset, value in header["corrupt"]:
            raw[offset] = value
        path.write_bytes(bytes(raw))
    return path


@_profile("nifti")
@given(case=nifti_files())
def test_fuzz_nifti_headers(scratch, case):
    data, header = case
    with _example_dir(scratch) as folder:
        path = _write(data, header, folder / ("m.nii.gz" if header["gz"] else "m.nii"))
        report = folder / "r.json"
        before = _snapshot(folder)
        code, out, err = _run(["evaluate", "--pred", str(path), "--gt", str(path), "--json", str(report)])
        event(f"evaluate exit {code}")
        if code == 0:  # a correct output: the mask against itself
            result = json.loads(report.read_text())
            assert result["scan"]["DSC"] == 1.0 and result["n_scored_slices"] >= 1, result
            assert "Traceback" not in err
        else:
            _check_refusal(code, err, "evaluate", path.name)
            assert not report.exists()
        assert {k: v for k, v in _snapshot(folder).items() if k != "r.json"} == before  # input unchanged
        assert not [p for p in folder.iterdir() if ".part" in p.name]
        # segment refuses what the input layer refuses, before the network, with the same words
        from pedgm_kit.io import load_image

        try:
            load_image(path)
        except PedgmError as refused:
            out_mask = folder / "seg.nii.gz"
            code, _, err = _run(["segment", str(path), "-o", str(out_mask)])
            line = _check_refusal(code, err, "segment", path.name)
            assert str(refused).split(": ", 1)[-1].replace("image ", "") in line.replace("image ", ""), (refused, line)
            assert not out_mask.exists()
        assert _snapshot(folder).get(path.name) == before[path.name]


# ------------------------------------------------------------------------------------------------
# parameter files
# ------------------------------------------------------------------------------------------------


def _schema() -> dict:
    from pedgm_kit.params import SECTIONS, _pipeline_parameters, notebook_parameters

    return {s: (_pipeline_parameters() if s == "pipeline" else notebook_parameters(n)) for s, n in SECTIONS.items()}


SCHEMA = _schema()
#: Values the rules accept, so generated files are often valid and reach the dataset checks.
WORDS = {
    "layout": ["bids", "folders"], "freeze": ["none", "early"], "split": ["test", "all"], "loss": ["dice", "dice_bce"],
    "uncertainty": ["", "tta", "mc_dropout"], "retest_slices": ["labelled", "all"], "cord_scale": ["", "auto"],
    "shift": ["", "invert", "scale:0.5", "scale:1"], "variant": ["", "pretrained_aug", "scratch_noaug"],
    "data_dir": ["", "no-such-folder"], "init_weights": ["challenge", "large"],
}
VARIANTS = ["pretrained_aug", "pretrained_noaug", "scratch_aug", "scratch_noaug", "pretrained_adapted", "nope"]
WRONG = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8),
                  st.lists(st.integers(-3, 200), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _good(name: str, default):
    if name in ("variants", "curve_variants"):
        return st.lists(st.sampled_from(VARIANTS), max_size=4)
    if name == "train_persons" and isinstance(default, list):
        return st.lists(st.one_of(st.integers(-1, 120), st.just("all")), max_size=4)
    if name == "cord_scale":
        return st.one_of(st.sampled_from(WORDS["cord_scale"]), st.floats(0, 3), st.integers(0, 3))
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.one_of(st.integers(-3, 12), st.sampled_from([0, 1, 2, 3, 6, 7, 100, 2**32]))
    if isinstance(default, float):
        return st.one_of(st.floats(-1, 10), st.sampled_from([0.0, 1e-300, 0.25, 1.0, float("nan"), float("inf")]))
    if isinstance(default, str):
        return st.one_of(st.sampled_from(WORDS.get(name, [default])), st.text(max_size=10))
    if isinstance(default, list):
        if name in ("fractions", "split_fractions"):
            return st.lists(st.floats(-0.5, 1.5), min_size=2, max_size=4) | st.just([0.6, 0.2, 0.2])
        if name == "stat_metrics":
            return st.lists(st.sampled_from(["DSC", "MSD", "HSD", "JI", "DICE"]), max_size=4)
        return st.lists(st.sampled_from(default or ["x"]), max_size=3)
    return WRONG


#: Values every rule accepts, for the mostly-valid half of the examples (they reach the dataset checks).
PLAUSIBLE = {
    "window": [16, 200], "cv_folds": [0, 0, 2, 3, 6, 7, 100], "train_persons": [0, 1, 4, 5],
    "fractions": [[0.6, 0.2, 0.2]], "split_fractions": [[0.5, 0.25, 0.25]], "stat_metrics": [["DSC"], ["DSC", "HSD"]],
    "variants": [["pretrained_aug"], ["scratch_noaug", "pretrained_noaug"], []], "models": [["challenge"]],
    "curve_variants": [["pretrained_noaug"]], "spacing_mm": [0.25, 0.5], "multiplier": [1, 4],
}


def _plausible(name: str, default):
    if name == "train_persons" and isinstance(default, list):
        return st.lists(st.one_of(st.sampled_from([1, 2, 4, 5]), st.just("all")), min_size=1, max_size=3, unique=True)
    if name in PLAUSIBLE:
        return st.sampled_from(PLAUSIBLE[name])
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(1, 6)
    if isinstance(default, float):
        return st.floats(0.05, 0.95)
    if isinstance(default, str):
        return st.sampled_from(WORDS.get(name, [default]))
    return st.just(default)


@st.composite
def parameter_files(draw):
    if draw(st.booleans()):  # mostly valid: known sections and keys, plausible values, now and then one wrong
        out = {}
        for section in draw(st.lists(st.sampled_from(sorted(SCHEMA)), unique=True, min_size=1, max_size=4)):
            keys = draw(st.lists(st.sampled_from(sorted(SCHEMA[section])), unique=True, max_size=4))
            out[section] = {k: draw(WRONG if draw(st.integers(0, 12)) == 0 else
                                    _plausible(k, SCHEMA[section][k].default)) for k in keys}
        return out
    shape = draw(st.sampled_from(["sections"] * 8 + ["flat", "not a mapping", "raw text"]))
    if shape == "not a mapping":
        return draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=10)))
    if shape == "raw text":
        return draw(st.text(max_size=60))
    if shape == "flat":  # keys at the top level, no section
        return draw(st.dictionaries(st.sampled_from(sorted(SCHEMA["train"])), st.integers(0, 5), min_size=1, max_size=3))
    out = {}
    for section in draw(st.lists(st.sampled_from([*SCHEMA, "trainn", "extra"]), unique=True, max_size=4)):
        if section not in SCHEMA:
            out[section] = {"epochs": 1}
            continue
        if draw(st.integers(0, 15)) == 0:
            out[section] = draw(WRONG)  # a section that is not a mapping
            continue
        values = {}
        known = sorted(SCHEMA[section])
        for key in draw(st.lists(st.sampled_from(known + ["bogus", "epoch"]), unique=True, max_size=5)):
            default = SCHEMA[section][key].default if key in SCHEMA[section] else None
            values[key] = draw(_good(key, default) if draw(st.integers(0, 4)) else WRONG)
        out[section] = values
    return out


@_profile("params")
@given(content=parameter_files())
def test_fuzz_parameter_files(scratch, content):
    with _example_dir(scratch) as folder:
        params = folder / "p.yaml"
        params.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
        script = folder / "job.sbatch"
        before = _snapshot(folder)
        code, out, err = _run(["slurm", "--params", str(params), "--out", str(script)])
        event(f"slurm exit {code}")
        if code == 0:
            text = script.read_text()
            assert text.startswith("#!") and "pedgm train --params" in text and "Traceback" not in err
            from pedgm_kit.params import load_params
            from pedgm_kit.runner import training_plan

            spec = next(line for line in text.splitlines() if line.startswith("#SBATCH --array="))
            tasks = set()
            for part in spec.split("=", 1)[1].split("%")[0].split(","):
                first, _, last = part.partition("-")
                tasks.update(range(int(first), int(last or first) + 1))
            assert tasks == set(range(len(training_plan(load_params(params)))))  # one task per run of the plan
            return
        _check_refusal(code, err, "slurm", "p.yaml")
        assert _snapshot(folder) == before  # no script, the file unchanged
        for argv in (["run", "--params", str(params), "--outputs", str(folder / "outs")],
                     ["train", "--params", str(params), "--all", "--output-dir", str(folder / "train")]):
            code, _, err = _run(argv)  # every command refuses the same file before anything runs
            _check_refusal(code, err, argv[0], "p.yaml")
            assert _snapshot(folder) == before and not (folder / "outs").exists()


# ------------------------------------------------------------------------------------------------
# weights metadata
# ------------------------------------------------------------------------------------------------

META_KEYS = ["filters", "input_size", "threshold", "spacing_mm", "mean_train", "std_train", "normalisation", "note"]
META_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 300), st.integers(-(2**70), 2**70), st.floats(),
    st.sampled_from([0, 1, 16, 32, 200, 0.25, 0.5, 0.999, 1.0, 5.0, 1e400, "volume", "slice", "32"]),
    st.text(max_size=6), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


@st.composite
def metadata_texts(draw):
    shape = draw(st.sampled_from(["edit"] * 6 + ["only drawn", "not an object", "not JSON"]))
    if shape == "not JSON":
        return draw(st.one_of(st.text(max_size=40), st.just("[" * 5000), st.just('{"threshold": ')))
    if shape == "not an object":
        return json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=5))))
    drawn = draw(st.dictionaries(st.sampled_from(META_KEYS), META_VALUES, max_size=4))
    base = {} if shape == "only drawn" else dict(BASE_META)
    for key in draw(st.lists(st.sampled_from(sorted(base) or ["x"]), max_size=2, unique=True)):
        base.pop(key, None)
    base.update(drawn)
    return json.dumps(base, allow_nan=True)


BASE_META: dict = {}


@pytest.fixture(scope="module")
def weights_folder(tmp_path_factory):
    from pedgm_kit.registry import fetch_group

    src = fetch_group("challenge")
    folder = tmp_path_factory.mktemp("weights")
    shutil.copy(src, folder / "w.hdf5")
    BASE_META.update(json.loads(src.with_suffix(".json").read_text()))
    return folder, _digest(folder / "w.hdf5")


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@_profile("weights")
@given(text=metadata_texts())
def test_fuzz_weights_metadata(weights_folder, text):
    from pedgm_kit.weights import read_metadata

    folder, digest = weights_folder
    weights, meta_path, out = folder / "w.hdf5", folder / "w.json", folder / "out"
    meta_path.write_text(text, encoding="utf-8")
    out.mkdir(exist_ok=True)
    try:
        meta = read_metadata(weights)
    except WeightsError as refused:
        event("metadata refused")
        assert len(str(refused).splitlines()) == 1
        code, _, err = _run(["export", "--model", str(weights), "--out", str(out)])
        _check_refusal(code, err, "export", "w.json", "w.hdf5")
        assert not list(out.iterdir()) and meta_path.read_bytes() == text.encode("utf-8")
        return
    event("metadata accepted")
    # accepted: every value is what the code that reads it needs
    assert isinstance(meta["input_size"], (int, float)) and 16 <= int(meta["input_size"]) <= 2048
    assert float(meta["input_size"]).is_integer()
    assert 0 <= float(meta["threshold"]) < 1 and 0.01 <= float(meta["spacing_mm"]) <= 5
    assert int(meta["filters"]) == 32 and meta["normalisation"] == "volume"
    assert math.isfinite(float(meta.get("mean_train", 0.0))) and float(meta.get("std_train", 1.0)) > 0
    assert _digest(weights) == digest  # the weights are never touched
