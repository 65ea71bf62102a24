"""Shared fixtures: a per-session data cache fed from the local mirror, seeded RNG, tiny images."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = REPO.parent / "shared" / "pedgm-data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# notebook kernels started by papermill import pedgm_kit from this checkout too
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session", autouse=True)
def _data_env(tmp_path_factory):
    """Fetch into a session temp cache; use ../shared/pedgm-data as mirror unless one is set."""
    mirror = os.environ.get("PEDGM_DATA_MIRROR") or str(DEFAULT_MIRROR)
    if not Path(mirror).is_dir():
        pytest.exit(f"data mirror not found: {mirror} (set PEDGM_DATA_MIRROR)", returncode=2)
    old = {k: os.environ.get(k) for k in ("PEDGM_DATA_MIRROR", "PEDGM_DATA_DIR")}
    # absolute, so notebook kernels started in another folder find it too
    os.environ["PEDGM_DATA_MIRROR"] = str(Path(mirror).resolve())
    os.environ["PEDGM_DATA_DIR"] = str(tmp_path_factory.mktemp("pedgm-cache"))
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def require_shared(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise skip locally, but fail where shared files are required.

    ``.ci/run`` exports ``PEDGM_REQUIRE_SHARED=1`` (and CI sets ``CI=true``), so a test that needs
    ``../shared`` can never silently stop being checked there.
    """
    if path.exists():
        return path
    message = f"{what} not found at {path}"
    if os.environ.get("PEDGM_REQUIRE_SHARED") == "1" or os.environ.get("CI") == "true":
        pytest.fail(message + " (required in CI: PEDGM_REQUIRE_SHARED=1 / CI=true)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mirror() -> Path:
    return Path(os.environ["PEDGM_DATA_MIRROR"])


@pytest.fixture(scope="session")
def gm_challenge(_data_env) -> Path:
    """Root of the gm-challenge-data BIDS sample, fetched and verified through the registry."""
    from pedgm_kit.registry import fetch_group

    return fetch_group("gm-challenge-data")


@pytest.fixture(scope="session")
def t2s_dir(_data_env) -> Path:
    from pedgm_kit.registry import fetch_group

    return fetch_group("sct_testing_data") / "t2s"


@pytest.fixture(scope="session")
def challenge_segmenter(_data_env):
    from pedgm_kit.segment import Segmenter

    return Segmenter("challenge")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_image(rng):
    """A small LAS float image with a bright disc per slice (not a real scan)."""
    data = rng.normal(100, 5, size=(24, 20, 4)).astype(np.float32)
    yy, xx = np.mgrid[:24, :20]
    data[(yy - 12) ** 2 + (xx - 10) ** 2 < 16] += 200
    affine = np.diag([-0.5, 0.5, 2.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def run_notebook(name: str, tmp_path: Path, **parameters) -> Path:
    """Execute ``notebooks/<name>`` with papermill into ``tmp_path``; returns the executed copy."""
    import papermill

    out = tmp_path / f"executed_{name}"
    papermill.execute_notebook(
        str(REPO / "notebooks" / name), str(out), parameters=parameters, kernel_name="python3",
        progress_bar=False, cwd=str(tmp_path), store_widget_state=False,
    )
    return out


@pytest.fixture(scope="session")
def tiny_data(gm_challenge, tmp_path_factory) -> Path:
    """train/val/test.npz from three real scans (one person each), for training tests."""
    import warnings

    import pandas as pd

    from pedgm_kit.data_creation import build_split_arrays, save_npz
    from pedgm_kit.datasets import discover_bids
    from pedgm_kit.preprocess import preprocess_scan, save_preprocessed

    root = tmp_path_factory.mktemp("tiny-data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = discover_bids(gm_challenge)
    splits = {"train": "sub-9418_run-1_T2starw", "val": "sub-9709Ses1_run-1_T2starw",
              "test": "sub-10062Ses1_run-1_T2starw"}
    rows = []
    (root / "pre").mkdir()
    for scan_id in splits.values():
        paths = save_preprocessed(preprocess_scan(index[scan_id]), root / "pre")
        rows.append({"scan_id": scan_id, "person_id": index[scan_id].person_id, "image": paths["image"].name})
    frame = pd.DataFrame(rows)
    (root / "data").mkdir()
    for name, scan_id in splits.items():
        save_npz(build_split_arrays(frame, [scan_id], root=root / "pre", keep_empty_slices=False),
                 root / "data" / f"{name}.npz")
    return root / "data"


#: parameters/demo_cv.yaml at tiny sizes: every notebook, every mechanism, little training (2 folds, 6 runs)
TINY_CV = {
    "data": {"cv_folds": 2, "locked_test_persons": ["sub-9584"]},  # one person locked away (test_locked_test.py)
    "train": {"epochs": 1, "max_slices": 8, "sweep": True, "export_onnx": False},
    "pipeline": {"variants": ["scratch_noaug"], "adapted_variant": True, "train_persons": [1, "all"],
                 "curve_variants": ["pretrained_adapted"]},
    "evaluate": {"n_boot": 200, "retest": True},
}


def tiny_cv_params(folder: Path, name: str = "demo_cv_tiny.yaml", **changes) -> Path:
    """parameters/demo_cv.yaml with :data:`TINY_CV` (and ``changes``: {section: {key: value}}) in ``folder``."""
    import yaml

    params = yaml.safe_load((REPO / "parameters" / "demo_cv.yaml").read_text())
    for section, values in [*TINY_CV.items(), *changes.items()]:
        params.setdefault(section, {}).update(values)
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="session")
def tiny_cv_run(tmp_path_factory):
    """One uninterrupted ``pedgm run`` of the tiny demo_cv profile, shared by the tests that read it:
    (run folder, parameter file)."""
    from pedgm_kit.cli import main

    tmp = tmp_path_factory.mktemp("demo_cv")
    params = tiny_cv_params(tmp)
    assert main(["run", "--params", str(params), "--outputs", str(tmp), "--run-id", "r1"]) == 0
    return tmp / "r1", params


@pytest.fixture(scope="session")
def installed_pedgm(tmp_path_factory) -> dict:
    """pedgm_kit built as a wheel from a copy of the checkout and installed into a fresh venv outside it.

    The venv's own site-packages holds only pedgm_kit (notebooks and templates as package data); its
    dependencies come from this environment through a ``.pth`` line, so nothing is downloaded. Returns
    ``{"python", "pedgm", "env"}``: ``env`` has no PYTHONPATH into the checkout, so the installed copy
    is the one imported (by the CLI and by the notebook kernels it starts).
    """
    import shutil
    import subprocess
    import sys
    import sysconfig

    tmp = tmp_path_factory.mktemp("installed")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # never this checkout
    source = tmp / "source"
    keep = {"pedgm_kit", "pyproject.toml", "README.md", "notebooks"}
    shutil.copytree(REPO, source, symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == REPO and n not in keep]
                    + [n for n in names if n == "__pycache__"])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "wheel"), str(source)], check=True, capture_output=True, text=True, env=env)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=env).stdout.strip())
    (wheel,) = (tmp / "wheel").glob("pedgm_kit-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True, env=env)
    # the dependencies, after the install (else pip sees this checkout's editable pedgm_kit and skips the wheel)
    (site / "zz_pedgm_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"python": python, "pedgm": venv / "bin" / "pedgm", "env": env, "site": site}
