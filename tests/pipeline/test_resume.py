"""An interrupted study resumes where it stopped: run state, ``pedgm run --resume``, ``pedgm status``,
SIGTERM during training (SLURM preemption), and resumed == uninterrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, tiny_cv_params
from hypothesis import given, settings
from hypothesis import strategies as st

from pedgm_kit.cli import main
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.params import load_params
from pedgm_kit.runner import pipeline_steps, slurm_script
from pedgm_kit.runstate import PREEMPTED_EXIT, RunState, Step, load_state, resume_actions


#: a fresh process per training run: determinism needs TensorFlow's one inter-op thread, which only a
#: process whose first TensorFlow work is the run gets (as notebook 04's kernel); argv: data, out, mode
_TRAIN = """
import json, os, signal, sys
import keras
from pedgm_kit.runstate import PREEMPTED_EXIT, Preempted
from pedgm_kit.train import TrainConfig, train_variant

class SigtermMidEpoch(keras.callbacks.Callback):  # SIGTERM to this process after the first batch of epoch 2
    first_epoch = current = None
    def on_epoch_begin(self, epoch, logs=None):
        self.first_epoch = epoch if self.first_epoch is None else self.first_epoch
        self.current = epoch
    def on_train_batch_end(self, batch, logs=None):
        if sys.argv[3] == "cut" and self.current == 1 and batch == 0:
            os.kill(os.getpid(), signal.SIGTERM)

probe = SigtermMidEpoch()
# early stopping with patience 1 and a gain no epoch reaches: the uninterrupted run stops after epoch 2, and
# so must the resumed one (its counters come back with the weights)
config = TrainConfig(pretrained=False, augment=True, epochs=3, max_slices=8, batch_size=2, patience=1, min_delta=1.0)
try:
    summary = train_variant(sys.argv[1], sys.argv[2], config, verbose=0, export_onnx=False, callbacks=[probe])
except Preempted as err:
    print(json.dumps({"handler_restored": signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "message": str(err)}))
    sys.exit(PREEMPTED_EXIT)
print(json.dumps({"first_epoch": probe.first_epoch,
                  **{k: summary.get(k) for k in ("best_epoch", "best_val_dice", "test_dice")}}))
"""


def _train(tiny_data, out, mode):
    done = subprocess.run([sys.executable, "-c", _TRAIN, str(tiny_data), str(out), mode], capture_output=True,
                          text=True, timeout=600)
    return done.returncode, (json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else done.stderr)


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_history(tiny_data, tmp_path):
    """Augmented training with early stopping cut by SIGTERM in epoch 2, resumed: history.csv identical to an
    uninterrupted run's (issue 19 point 13: the augmentation epoch counter no longer restarts)."""
    rc, whole = _train(tiny_data, tmp_path / "whole", "whole")
    assert rc == 0, whole
    rc, cut = _train(tiny_data, tmp_path / "cut", "cut")
    assert rc == PREEMPTED_EXIT, cut
    assert cut["handler_restored"] and "1 completed epoch(s) kept" in cut["message"]
    folder = tmp_path / "cut" / "scratch_aug"
    assert (folder / "backup").is_dir() and len((folder / "history.csv").read_text().splitlines()) == 3  # header, 0, 1
    rc, resumed = _train(tiny_data, tmp_path / "cut", "resume")
    assert rc == 0, resumed
    assert resumed.pop("first_epoch") == 1  # continued after the completed epoch, not from zero
    assert whole.pop("first_epoch") == 0
    assert (folder / "history.csv").read_text() == (tmp_path / "whole" / "scratch_aug" / "history.csv").read_text()
    assert resumed == whole
    assert len((folder / "history.csv").read_text().splitlines()) == 4  # header, 0, 1, 2: stopped early
    assert not (folder / "backup").exists()


# ------------------------------------------------------------------------ the pipeline: pedgm run --resume
def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _table(path: Path, run: Path) -> pd.DataFrame:
    """A CSV with this run's folder written as <run> (the tables of two runs are compared value for value)."""
    frame = pd.read_csv(path)
    for col in frame.columns[frame.dtypes == object]:
        frame[col] = frame[col].map(lambda v: v.replace(str(run), "<run>") if isinstance(v, str) else v)
    return frame


@pytest.fixture(scope="module")
def resumed_run(tiny_cv_run, tmp_path_factory):
    """The tiny demo_cv profile stopped by SIGTERM as its second training run starts, then resumed:
    (run folder, reference run folder, parameter file, stderr of the stopped run, mtimes before resuming)."""
    reference, params = tiny_cv_run
    tmp = tmp_path_factory.mktemp("resume")
    run = tmp / "r2"
    proc = subprocess.Popen([sys.executable, "-m", "pedgm_kit", "run", "--params", str(params), "--outputs", str(tmp),
                             "--run-id", "r2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = "train/fold-1/pretrained_adapted"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        state = load_state(run) if (run / "state.json").is_file() else None
        if state and state["steps"].get(second, {}).get("status") == "running":
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == PREEMPTED_EXIT, err
    before = _mtimes(run)
    assert main(["run", "--resume", str(run)]) == 0
    return run, reference, params, err, before


@pytest.mark.slow
def test_sigterm_stops_the_run_and_resume_finishes_it_as_if_uninterrupted(resumed_run):
    run, reference, _, err, before = resumed_run
    assert err.strip().splitlines()[-1] == (
        "pedgm run: stopped by SIGTERM in step train/fold-1/pretrained_adapted "
        f"(its last completed epoch is kept); continue with: pedgm run --resume {run}")
    state = load_state(run)
    assert all(r["status"] == "done" for r in state["steps"].values())
    reused = {name for name, r in state["steps"].items() if r["reused"]}
    assert reused == {"01_preprocess", "02_data_creation", "03_augment", "train/fold-1/scratch_noaug"}
    after = _mtimes(run)
    for rel, mtime in before.items():  # what finished before SIGTERM was not made again
        if rel.startswith(("preprocess/", "data/", "augment/", "train/fold-1/scratch_noaug/")):
            assert after[rel] == mtime, rel
    # the cut training run and everything after it ran; the results equal the uninterrupted run's, value for value
    for path in sorted(reference.glob("train/**/history.csv")):
        rel = path.relative_to(reference)
        assert (run / rel).read_text() == path.read_text(), rel
    tables = sorted(p.relative_to(reference) for p in reference.glob("evaluation/**/*.csv"))
    assert {"evaluation/headline.csv", "evaluation/per_fold_dsc.csv"} <= {str(t) for t in tables}
    for rel in tables:
        pd.testing.assert_frame_equal(_table(run / rel, run), _table(reference / rel, reference), check_exact=True,
                                      obj=str(rel))
    page = (run / "index.html").read_text()
    assert "Steps reused from an earlier run" in page and "train/fold-1/scratch_noaug" in page


@pytest.mark.slow
def test_changed_epochs_are_refused_and_overwrite_reruns_only_what_they_affect(resumed_run, tmp_path, capsys):
    run, _, params, _, _ = resumed_run
    capsys.readouterr()
    longer = tiny_cv_params(tmp_path, "longer.yaml", train={"epochs": 2})
    before = _mtimes(run)
    assert main(["run", "--resume", str(run), "--params", str(longer)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step 'train/fold-1/scratch_noaug'" in err[0] and "train.epochs (1 -> 2)" in err[0]
    assert "(and 5 more step(s))" in err[0] and "--overwrite" in err[0]
    assert _mtimes(run) == before  # nothing touched
    # with --overwrite: the training runs and what reads them; notebooks 01-03 are kept
    state = RunState(run, pipeline_steps(load_params(longer), run), load_state(run))
    actions = resume_actions(state, overwrite=True)
    assert {n for n, a in actions.items() if a == "reuse"} == {"01_preprocess", "02_data_creation", "03_augment"}
    assert all(actions[n] == "rerun" for n in actions if n.startswith("train/") or n in ("05_evaluate", "report"))
    # and carried out, for a change that leaves the training alone: evaluation and report run again, nothing else
    fewer = tiny_cv_params(tmp_path, "fewer.yaml", evaluate={"n_boot": 100})
    assert main(["run", "--resume", str(run), "--params", str(fewer)]) == 2
    assert "evaluate.n_boot (200 -> 100)" in capsys.readouterr().err
    assert main(["run", "--resume", str(run), "--params", str(fewer), "--overwrite"]) == 0
    after = _mtimes(run)
    changed = {rel for rel in before if after.get(rel) != before[rel]}
    assert "evaluation/results.json" in changed and "index.html" in changed
    assert not {rel for rel in changed if rel.startswith(("preprocess/", "data/", "augment/", "train/"))}
    assert (run / "parameters.yaml").read_text() == fewer.read_text()  # --resume alone now continues this one
    assert main(["run", "--resume", str(run)]) == 0  # all reused: only the state is written
    final = _mtimes(run)
    assert {rel for rel in after if final.get(rel) != after[rel]} <= {"state.json"}


@pytest.mark.slow
def test_status_table_of_a_finished_run(resumed_run, capsys):
    run = resumed_run[0]
    capsys.readouterr()
    assert main(["status", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["step", "status", "seconds", "start", "end"]
    assert len(lines) == 1 + 11 + 1  # 01, 02, 03, six training runs, 05, the report; the total
    assert lines[-1].startswith("11 of 11 steps done; time left: nothing (every step is done); mean training run")


def test_status_estimates_the_time_left_from_measured_steps(tmp_path, capsys):
    steps = {
        "01_preprocess": {"status": "done", "seconds": 30.0},
        "train/fold-1/a": {"status": "done", "seconds": 10.0, "training": True},
        "train/fold-1/b": {"status": "done", "seconds": 20.0, "training": True, "reused": True},
        "train/fold-2/a": {"status": "interrupted", "seconds": 4.0, "seconds_before": 4.0, "training": True},
        "train/fold-2/b": {"status": "pending", "training": True},
        "05_evaluate": {"status": "failed", "seconds": 50.0},
        "report": {"status": "pending"},
    }
    (tmp_path / "state.json").write_text(json.dumps({"order": list(steps), "steps": steps}))
    assert main(["status", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split()[-1] == "reused" and lines[4].split()[:3] == ["train/fold-2/a", "interrupted", "4.0"]
    # mean training run 15 s: 11 s left of the cut one, 15 s for the pending one, 50 s measured for 05; no report yet
    assert lines[-1] == "3 of 7 steps done; time left: about 76 s plus 1 step(s) never timed; mean training run 15 s"
    (tmp_path / "state.json").write_text("{")
    assert main(["status", str(tmp_path)]) == 2
    assert "not a readable run state" in capsys.readouterr().err


def test_resume_refuses_what_it_cannot_resume(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path / "none")]) == 2
    assert "No run folder" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "no state.json" in capsys.readouterr().err
    assert main(["run", "--outputs", str(tmp_path)]) == 2
    assert "--params is required" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the state, property-based
_values = st.one_of(st.integers(-5, 5), st.booleans(), st.text("ab/", max_size=4), st.lists(st.integers(0, 3), max_size=2))
_params = st.dictionaries(st.text("abcdef_", min_size=1, max_size=6), _values, max_size=6)


@given(old=_params, new=_params, where=st.sampled_from(["runs/r1", "/tmp/elsewhere/r9"]))
@settings(max_examples=60, deadline=None)
def test_changed_steps_are_refused_naming_exactly_the_changed_keys(old, new, where, tmp_path_factory):
    """Any two parameter sets: --resume reuses when equal, else names exactly the keys that differ; the
    run folder's location does not count (paths inside it are recorded as <run>/...)."""
    run = tmp_path_factory.mktemp("state") / where.strip("/")
    run.mkdir(parents=True)
    (run / "out.txt").write_text("done")

    def steps(params, folder):
        first = Step("first", "x.ipynb", folder, {**params, "output_dir": str(folder / "a")}, "train",
                     outputs=("out.txt",))
        return [first, Step("second", "y.ipynb", folder, {"n": 1}, "evaluate", ("first",), outputs=("out.txt",))]

    state = RunState(run, steps(old, run))
    for name in state.steps:
        state.start(name)
        state.finish(name, "done")
    moved = run.parent / "moved"
    run.rename(moved)  # the same run folder elsewhere
    again = RunState(moved, steps(new, moved), load_state(moved))
    expected = sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))
    if not expected:
        assert resume_actions(again, overwrite=False) == {"first": "reuse", "second": "reuse"}
    else:
        with pytest.raises(ParameterError) as err:
            resume_actions(again, overwrite=False)
        message = str(err.value)
        assert "\n" not in message and "step 'first'" in message and "'second'" not in message
        assert [k for k in (f"train.{k}" for k in sorted(set(old) | set(new))) if f"{k} (" in message] == \
            [f"train.{k}" for k in expected][:4]
        assert resume_actions(again, overwrite=True) == {"first": "rerun", "second": "rerun"}


# ------------------------------------------------------------------------------------------ SLURM requeue
def test_slurm_job_forwards_sigterm_and_requeues(tmp_path):
    """The job script with a stand-in pedgm (stops on SIGTERM with status 143) and scontrol: bash runs it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv}/bin:$PATH"\n')
    fake = {"pedgm": "trap 'echo stopping >> \"$LOG\"; exit 143' TERM\necho \"$@\" >> \"$LOG\"\n"
                     "while true; do sleep 0.1; done\n",
            "scontrol": "echo \"scontrol $*\" >> \"$LOG\"\n"}
    for name, body in fake.items():
        (venv / "bin" / name).write_text("#!/usr/bin/env bash\n" + body)
        (venv / "bin" / name).chmod(0o755)
    script = tmp_path / "job.sbatch"
    script.write_text(slurm_script(REPO / "parameters" / "demo.yaml", venv=str(venv)))
    text = script.read_text()
    assert "#SBATCH --requeue" in text and "#SBATCH --signal=B:TERM@120" in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    log = tmp_path / "log"
    env = {**os.environ, "LOG": str(log), "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "77"}
    job = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (log.is_file() and "--task 3" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # what --signal=B:TERM sends: to the batch shell only
    out, _ = job.communicate(timeout=30)
    assert job.returncode == PREEMPTED_EXIT
    assert log.read_text().splitlines()[1:] == ["stopping", "scontrol requeue 77_3"]
    assert "requeued, it continues its training run" in out
