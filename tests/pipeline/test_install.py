"""pedgm_kit works installed, without a checkout: notebooks and templates travel as package data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_notebooks_are_package_data_and_stripped():
    """The package's notebooks/ is a link to the repository's (JupyterLab runs them there, so their
    default ``../outputs`` is the repository's); wheels carry the files themselves. No outputs."""
    from pedgm_kit.params import NOTEBOOKS

    assert NOTEBOOKS == REPO / "pedgm_kit" / "notebooks" and NOTEBOOKS.resolve() == REPO / "notebooks"
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01_preprocess.ipynb", "02_data_creation.ipynb", "03_augment.ipynb", "04_train.ipynb",
                     "05_evaluate.ipynb"]
    for name in names:
        cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), name


@pytest.mark.slow
def test_installed_copy_finds_its_notebooks_outside_the_checkout(installed_pedgm, tmp_path):
    probe = ("import pedgm_kit, pedgm_kit.params as p, pathlib; "
             "print(pathlib.Path(pedgm_kit.__file__).parent); print(p.NOTEBOOKS); "
             "print(sorted(x.name for x in p.NOTEBOOKS.glob('*.ipynb'))); "
             "import importlib.resources as r; print(r.files('pedgm_kit').joinpath('templates/report.html.j2').is_file())")
    out = subprocess.run([str(installed_pedgm["python"]), "-c", probe], cwd=tmp_path, env=installed_pedgm["env"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    package = Path(out[0])
    assert package.parent == installed_pedgm["site"] and REPO not in package.parents
    assert Path(out[1]) == package / "notebooks" and "05_evaluate.ipynb" in out[2] and out[3] == "True"
    help_text = subprocess.run([str(installed_pedgm["pedgm"]), "run", "--help"], cwd=tmp_path,
                               env=installed_pedgm["env"], check=True, capture_output=True, text=True).stdout
    assert "--params" in help_text
