"""No native start-up log noise of the backend (I0000 / W0000 / E0000 lines) in commands or notebooks.

TensorFlow writes lines such as ``E0000 ... failed call to cuInit ... (303)`` to descriptor 2 before
its logging reads ``TF_CPP_MIN_LOG_LEVEL``; on machines without a GPU they look like failures.
:mod:`pedgm_kit._backend` filters them at the one place Keras is imported; real errors stay visible.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NOISE = re.compile(r"^\s*(\[[A-Za-z]+\]\s*)?([IWE]\d{4} |WARNING: All log messages before absl)", re.M)


def _run(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must be quiet on its own
    return subprocess.run([sys.executable, "-m", "pedgm_kit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600, **kwargs)


@pytest.mark.slow
def test_pedgm_commands_are_quiet(tmp_path, t2s_dir):
    done = _run(["segment", str(t2s_dir / "t2s.nii.gz"), "-o", str(tmp_path / "o.nii.gz")])
    assert done.returncode == 0, done.stderr
    assert not NOISE.search(done.stdout + done.stderr), done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr
    failed = _run(["segment", str(tmp_path / "absent.nii.gz")])  # an error: exactly one line, nothing before it
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()] and "absent.nii.gz" in failed.stderr


@pytest.mark.slow
def test_training_notebook_is_quiet(tmp_path, tiny_data):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"train": {"data_dir": str(tiny_data), "output_dir": str(tmp_path / "run"),
                                                "smoke": True, "export_onnx": False},
                                      "pipeline": {"variants": ["pretrained_noaug"], "adapted_variant": False}}))
    done = _run(["train", "--params", str(params), "--variant", "pretrained_noaug"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert not NOISE.search(done.stdout + done.stderr), (done.stdout + done.stderr)[-3000:]
    assert "Kernel is running over TCP" not in done.stderr
    executed = json.loads((tmp_path / "run" / "pretrained_noaug" / "04_train.ipynb").read_text())
    texts = ["".join(out.get("text", "")) for cell in executed["cells"] for out in cell.get("outputs", [])
             if out.get("output_type") == "stream"]
    assert texts, "the notebook printed nothing at all?"
    for text in texts:
        assert not NOISE.search(text), text
