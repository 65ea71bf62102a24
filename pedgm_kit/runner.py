"""Headless runs of the numbered notebooks: the pipeline, the training plan, SLURM job arrays.

A parameter file (:mod:`pedgm_kit.params`) holds one section per notebook and a ``pipeline``
section for what the runner itself decides:

- ``variants``: the training variants (default the original study's four), ``adapted_variant``
  (default true: also ``pretrained_adapted``, the recipe that adapts under a domain shift);
- ``train_persons``: e.g. ``[1, 2, 4, all]``: the data-efficiency curve, each size a nested subset of
  each fold's training persons, trained for ``curve_variants`` (default ``pretrained_noaug``,
  ``scratch_noaug`` and the adapted variant);
- cross-validation comes from the ``data`` section (``cv_folds: k``).

:func:`training_plan` turns a parameter file into the list of training runs (fold x variant x
person subset), each a ``04_train`` notebook execution: ``pedgm run`` executes them all,
``pedgm train`` one, some or all of them (``--fold``, ``--variant``), and ``pedgm slurm`` writes one
job-array task per run, so a failed fold can be rerun alone. Runs resume where they stopped:
``pedgm run --resume`` skips every step whose outputs are complete and whose parameters are the
recorded ones (``<run>/state.json``, :mod:`pedgm_kit.runstate`), and a training run cut mid-way
continues from its last completed epoch. SIGTERM (SLURM's notice before preemption or the time
limit) stops training after the current batch, keeps the last completed epoch and exits with
status 143 (:data:`pedgm_kit.runstate.PREEMPTED_EXIT`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data_creation import fold_data_dir
from .datasets import FOLDER_OPTIONS
from .exceptions import InputFileError, ParameterError, PedgmError
from .io import check_choice
from .layout import (FOLD_PLACEHOLDER, HISTORY_CSV, PREDICTION_CACHE_DIR, SUMMARY_JSON, WEIGHTS_FILE, PlannedRun,
                     RunLayout, TrainPlan, plan_path, variant_dir)
from .params import NOTEBOOKS, load_params
from .registry import BUILTIN_MODELS
from .runstate import PREEMPTED_EXIT, STOP_ENV, STOP_FILE, Preempted, RunState, Step, load_state, resume_actions

__all__ = ["TrainRun", "check_run_id", "pipeline_steps", "plan_record", "run_notebook", "run_pipeline", "slurm_script",
           "train_variants", "training_plan"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SLURM_TIME = re.compile(r"(\d+-)?\d{1,3}(:\d{2}){0,2}|\d+-\d{1,2}")
_SLURM_MEM = re.compile(r"\d+[KMGT]?")
_CURVE_DEFAULT = ("pretrained_noaug", "scratch_noaug", "pretrained_adapted")


def _all_variants() -> dict[str, dict]:
    from .train.config import ADAPTED_VARIANT, VARIANTS

    return {**VARIANTS, **ADAPTED_VARIANT}


@dataclass(frozen=True)
class TrainRun:
    """One ``04_train`` execution: fold (0 = no cross-validation), variant, person subset (0 = all)."""

    fold: int
    variant: str
    persons: int
    parameters: dict = field(compare=False, hash=False)
    train_dir: Path = field(default=Path("outputs/train"), compare=False, hash=False)  # the plan's training folder

    @property
    def label(self) -> str:
        parts = ([f"fold {self.fold}"] if self.fold else []) + [self.variant]
        return " / ".join(parts + ([f"{self.persons} person(s)"] if self.persons else []))

    @property
    def notebook(self) -> Path:
        """Where the executed notebook is kept (beside the run's outputs)."""
        return Path(self.parameters["output_dir"]) / self.variant / "04_train.ipynb"


def training_plan(params: dict, *, data_dir: str | os.PathLike | None = None,
                  train_dir: str | os.PathLike | None = None) -> list[TrainRun]:
    """Every training run a parameter set asks for, in order: folds, then variants, then subsets.

    ``data_dir`` / ``train_dir`` override the ``train`` section's ``data_dir`` / ``output_dir`` (the
    pipeline points them into its run folder).
    """
    train = dict(params.get("train", {}))
    pipeline = dict(params.get("pipeline", {}))
    every = _all_variants()
    variants = list(pipeline.get("variants") or [v for v in every if v != "pretrained_adapted"])
    if pipeline.get("adapted_variant", True) and "pretrained_adapted" not in variants:
        variants.append("pretrained_adapted")
    unknown = [v for v in variants if v not in every]
    if unknown or len(set(variants)) != len(variants):
        raise ParameterError(f"pipeline.variants: unknown or repeated {unknown or variants}; known: {', '.join(every)}")
    sizes = [0 if s in ("all", 0) else int(s) for s in pipeline.get("train_persons") or []]
    curve = list(pipeline.get("curve_variants") or [v for v in _CURVE_DEFAULT if v in variants])
    folds = _folds(params)
    data_root = Path(data_dir or train.get("data_dir", "outputs/data/data"))
    train_root = Path(train_dir or train.get("output_dir", "outputs/train"))
    runs = []
    for fold in range(1, folds + 1) if folds else [0]:
        fold_data = fold_data_dir(data_root, fold) if fold else data_root
        for n, names in [(0, variants)] + [(n, curve) for n in sorted(set(s for s in sizes if s))]:
            for name in names:  # notebook 04 writes <output_dir>/<variant>
                runs.append(TrainRun(fold, name, n, {
                    **train, **every[name], "variant": name, "train_persons": n, "data_dir": str(fold_data),
                    "output_dir": str(variant_dir(train_root, name, fold=fold, persons=n).parent)}, train_root))
    return runs


def plan_record(plan: list[TrainRun], *, folds: int) -> TrainPlan:
    """The :class:`~pedgm_kit.layout.TrainPlan` of a training plan (``train/plan.json``): what readers enumerate."""
    return TrainPlan(runs=[PlannedRun(r.fold, r.variant, r.persons) for r in plan],
                     folds=list(range(1, folds + 1)) if folds else [0])


def run_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict, *,
                 cwd: str | os.PathLike | None = None, progress: bool = False, stream: bool = False) -> Path:
    """Execute a notebook with papermill; a failure names the notebook, the cell and the error.

    ``stream`` echoes the notebook's output to stderr as it runs (e.g. one line per training epoch).
    Widget state is not stored in the executed copy (the viewers' images would make it megabytes).
    """
    import logging

    import papermill

    if stream:
        logger = logging.getLogger("papermill")
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("    %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    notebook = Path(notebook)
    if not notebook.is_absolute() and not notebook.exists():
        notebook = NOTEBOOKS / notebook
    if not notebook.is_file():
        raise InputFileError(f"No such notebook: '{notebook}'")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                                   progress_bar=progress, cwd=str(cwd) if cwd else None, log_output=stream,
                                   store_widget_state=False,
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no start-up notices
    except papermill.PapermillExecutionError as err:
        if err.ename == "Preempted":
            raise Preempted(f"{notebook.name}: {err.evalue}; executed notebook kept at {output}") from None
        raise PedgmError(
            f"{notebook.name} failed in cell {err.exec_count} ({err.ename}: {str(err.evalue).splitlines()[0] if err.evalue else ''}); "
            f"executed notebook kept at {output}"
        ) from None
    return output


def train_variants(params_file: str | os.PathLike, *, variant: str | None = None, all_variants: bool = False,
                   fold: int | None = None, task: int | None = None, output_dir: str | os.PathLike | None = None,
                   progress: bool = True) -> list[Path]:
    """Run ``04_train.ipynb`` for the selected runs of :func:`training_plan`; returns the executed notebooks.

    Select with ``task`` (an index into the plan: a SLURM array task), or ``variant`` and/or ``fold``,
    or ``all_variants`` for every run.
    """
    from tqdm.auto import tqdm

    params = load_params(params_file)
    plan = training_plan(params, train_dir=output_dir)
    if task is not None:
        if isinstance(task, bool) or not 0 <= int(task) < len(plan):
            raise ParameterError(f"--task must be 0-{len(plan) - 1} (the plan has {len(plan)} runs), got {task!r}")
        chosen = [plan[int(task)]]
    elif all_variants:
        chosen = [r for r in plan if fold is None or r.fold == fold]
    else:
        check_choice(variant, tuple(_all_variants()), name="--variant (or --all)")
        chosen = [r for r in plan if r.variant == variant and r.persons == 0 and (fold is None or r.fold == fold)]
    if not chosen:
        folds = sorted({r.fold for r in plan})
        raise ParameterError(f"no training run matches (folds in the plan: {folds}; variants: "
                             f"{sorted({r.variant for r in plan})})")
    _write_plan(params, plan)
    done = []
    for run in tqdm(chosen, desc="training", unit="run", disable=not progress):
        with _StopOnSigterm(run.notebook.parent, training=True) as stop:
            try:
                done.append(run_notebook("04_train.ipynb", run.notebook, run.parameters, stream=progress))
            except Exception:
                if stop.requested:  # e.g. the kernel itself got SIGTERM before training started
                    raise Preempted(f"{run.label}: stopped by SIGTERM; rerun the same command to continue") from None
                raise
            if stop.requested:
                raise Preempted(f"{run.label}: stopped by SIGTERM after it finished; rerun for the next runs")
    return done


def slurm_script(params_file: str | os.PathLike, *, variants: list[str] | None = None, gpus: int = 1,
                 time: str = "04:00:00", mem: str = "32G", cpus: int = 8, partition: str = "",
                 account: str = "", venv: str = ".venv", job_name: str = "pedgm-train") -> str:
    """A SLURM job-array script: one task per training run of the plan (fold x variant x subset).

    ``variants`` restricts the plan to those variants. Each task runs
    ``pedgm train --params FILE --task $SLURM_ARRAY_TASK_ID``; a failed task is rerun alone with the
    same command and its task number (or ``--fold K --variant V``). Tasks are requeued
    (``--requeue``) when preempted or stopped by SIGTERM near their time limit
    (``--signal=B:TERM@120``, forwarded to pedgm, exit status 143) and continue their training run
    from its last completed epoch.
    """
    every = _all_variants()
    variants = list(variants) if variants else None
    problems = [f"unknown variant {v!r} (one of {', '.join(every)})" for v in variants or [] if v not in every]
    problems += [f"variant {v!r} given twice" for v in dict.fromkeys(v for v in variants or [] if variants.count(v) > 1)]
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        problems.append(f"--gpus must be an integer >= 0, got {gpus!r}")
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        problems.append(f"--cpus must be a positive integer, got {cpus!r}")
    if not _SLURM_TIME.fullmatch(str(time)):
        problems.append(f"--time must be a SLURM time such as 04:00:00 or 1-12:00:00, got {time!r}")
    if not _SLURM_MEM.fullmatch(str(mem)):
        problems.append(f"--mem must be a number with an optional K/M/G/T unit such as 32G, got {mem!r}")
    for name, value in (("--partition", partition), ("--account", account), ("job name", job_name)):
        if value and not re.fullmatch(r"[A-Za-z0-9_.,-]+", str(value)):
            problems.append(f"{name} may hold only letters, digits and _ . , -, got {value!r}")
    if any(c in str(venv) for c in "\n\r\0") or not str(venv).strip():
        problems.append(f"--venv must be a path on one line, got {venv!r}")
    if any(c in str(params_file) for c in "\n\r\0"):
        problems.append(f"--params must be a path on one line, got {str(params_file)!r}")
    if problems:
        raise ParameterError("bad SLURM settings: " + "; ".join(problems))
    plan = training_plan(load_params(params_file))
    tasks = [i for i, run in enumerate(plan) if variants is None or run.variant in variants]
    if not tasks:
        raise ParameterError(f"no training run of the plan uses the variants {variants}")
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array={_array_spec(tasks)}",
        f"#SBATCH --time={time}",
        f"#SBATCH --mem={mem}",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --output={job_name}-%A_%a.log",
        "#SBATCH --requeue",  # a preempted task goes back in the queue ...
        "#SBATCH --signal=B:TERM@120",  # ... and SIGTERM 2 minutes before the time limit lets it stop cleanly
    ]
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    lines.append("# tasks: " + "; ".join(f"{i} = {plan[i].label}" for i in tasks))
    lines += [
        "set -euo pipefail",
        f"source {shlex.quote(venv)}/bin/activate",
        'echo "pedgm: training task $SLURM_ARRAY_TASK_ID on $(hostname)"',
        "# SIGTERM (preemption, or the time limit near) goes to pedgm, which stops after the current batch with",
        f"# the last completed epoch kept and exits {PREEMPTED_EXIT}; the task is requeued and continues from there",
        f'pedgm train --params {shlex.quote(str(params_file))} --task "$SLURM_ARRAY_TASK_ID" &',
        "child=$!",
        'trap \'kill -TERM "$child" 2>/dev/null || true\' TERM',
        "status=0",
        'wait "$child" || status=$?',
        'if [ "$status" -gt 128 ] && kill -0 "$child" 2>/dev/null; then  # the trap ran: wait for pedgm to stop',
        '    status=0',
        '    wait "$child" || status=$?',
        "fi",
        f'if [ "$status" -eq {PREEMPTED_EXIT} ]; then',
        '    echo "pedgm: task $SLURM_ARRAY_TASK_ID stopped by SIGTERM; requeued, it continues its training run"',
        '    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}" || true',
        "fi",
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


def _array_spec(tasks: list[int]) -> str:
    """SLURM's ``--array`` value: runs of consecutive task ids as ranges (``0-4,7,9-10``)."""
    parts, start = [], tasks[0]
    for prev, cur in zip(tasks, [*tasks[1:], None]):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(parts)


def check_run_id(run_id: str) -> str:
    """A run id is a plain folder name: never a path, so a run stays inside ``--outputs``."""
    if not isinstance(run_id, str) or not _SAFE_NAME.fullmatch(run_id) or run_id in (".", ".."):
        raise ParameterError(
            f"run id {run_id!r} must be a plain folder name (letters, digits, . _ -; no '/', no '..', "
            "not starting with '.' or '-')"
        )
    return run_id


class _StopOnSigterm:
    """While a step runs: SIGTERM asks the training kernel to stop (the file named by ``$PEDGM_STOP_FILE``)
    and, outside training, stops the run at once (:class:`Preempted`). Only in the main thread."""

    def __init__(self, folder: Path, *, training: bool = False):
        self.file, self.training, self.requested = Path(folder) / STOP_FILE, training, False
        self._previous = self._env = None

    def _handle(self, signum, frame):
        self.requested = True
        try:
            self.file.touch()
        except OSError:
            pass
        if not self.training:
            raise Preempted("stopped by SIGTERM")

    def __enter__(self):
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.unlink(missing_ok=True)
        self._env = os.environ.get(STOP_ENV)
        os.environ[STOP_ENV] = str(self.file.resolve())  # the notebook kernel inherits it
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        if self._env is None:
            os.environ.pop(STOP_ENV, None)
        else:
            os.environ[STOP_ENV] = self._env
        self.file.unlink(missing_ok=True)
        return False


def _folds(params: dict) -> int:
    return int(params.get("data", {}).get("cv_folds", 0) or 0)


def _write_plan(params: dict, plan: list[TrainRun]) -> None:
    """Record the plan in its training folder (``<train>/plan.json``, :class:`~pedgm_kit.layout.TrainPlan`)."""
    if not plan:
        return
    record, path = plan_record(plan, folds=_folds(params)), plan_path(plan[0].train_dir)
    try:
        if TrainPlan.read(path) == record:
            return  # unchanged: a resumed run touches nothing it need not
    except InputFileError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    record.write(path)


def pipeline_steps(params: dict, run: str | os.PathLike) -> list[Step]:
    """The steps of ``pedgm run`` into ``run``: notebooks 01-03, every training run, 05, the report."""
    from .shift import parse_shift

    lay = RunLayout(run)
    run = lay.root
    pre = dict(params.get("preprocess", {}))
    shift = parse_shift(pre.get("shift", ""))
    plan = training_plan(params, data_dir=lay.arrays, train_dir=lay.train)
    folds = _folds(params)
    layout = {k: v for k, v in pre.items() if k in ("data_dir", "layout", *FOLDER_OPTIONS)}
    if shift is not None:  # notebook 05 evaluates on the simulated copy notebook 01 writes
        layout["data_dir"] = str(lay.simulated(shift.name))
    steps = [
        Step("01_preprocess", "01_preprocess.ipynb", lay.preprocess,
             {**pre, "output_dir": str(lay.preprocess)}, "preprocess",
             outputs=(lay.relative(lay.preprocess_json),)),
        Step("02_data_creation", "02_data_creation.ipynb", lay.data,
             {**params.get("data", {}), "output_dir": str(lay.data),
              "preprocessed_dir": str(lay.preprocessed)}, "data", ("01_preprocess",),
             outputs=(lay.relative(lay.data_creation_json), lay.relative(lay.manifest))),
        Step("03_augment", "03_augment.ipynb", lay.augment,
             {**params.get("augment", {}), "output_dir": str(lay.augment),
              "data_dir": str(fold_data_dir(lay.arrays, 1) if folds else lay.arrays)},
             "augment", ("02_data_creation",), outputs=(lay.relative(lay.augment_json),)),
    ]
    for r in plan:
        rel = lay.relative(lay.variant(r.variant, fold=r.fold, persons=r.persons))
        steps.append(Step(rel, "04_train.ipynb", r.notebook.parent, r.parameters, "train",
                          ("02_data_creation",), tuple(f"{rel}/{f}" for f in (HISTORY_CSV, WEIGHTS_FILE, SUMMARY_JSON)),
                          training=True))
    models = {name: name for name in BUILTIN_MODELS}
    fold = FOLD_PLACEHOLDER if folds else 0  # notebook 05 fills in each fold
    models.update({r.variant: str(lay.weights(r.variant, fold=fold)) for r in plan if r.persons == 0})
    evaluate = {**params.get("evaluate", {}), **layout, "output_dir": str(run), "models": models,
                "split_manifest": str(lay.manifest), "cord_scale": pre.get("cord_scale", ""),
                "train_dir": "",
                "shift_label": shift.label if shift else "",
                "curve_dir": str(lay.train) if any(r.persons for r in plan) else ""}
    trained = tuple(s.name for s in steps if s.training)
    steps.append(Step("05_evaluate", "05_evaluate.ipynb", run, evaluate, "evaluate",
                      ("01_preprocess", "02_data_creation", *trained), outputs=(lay.relative(lay.results),)))
    steps.append(Step("report", None, run, {}, "", tuple(s.name for s in steps), outputs=(lay.relative(lay.report),)))
    return steps


def run_pipeline(params_file: str | os.PathLike | None, *, outputs: str | os.PathLike = "outputs",
                 run_id: str | None = None, overwrite: bool = False, progress: bool = True,
                 resume: bool | str | os.PathLike = False) -> Path:
    """Run notebooks 01 -> 05 (every training run in 04) into ``<outputs>/<run_id>/``; returns the run folder.

    Each notebook's paths are set to the run folder (the parameter file supplies everything else);
    executed notebooks are kept beside their outputs and ``index.html`` (:mod:`pedgm_kit.report`)
    links the results. A second run gets a new run id (a timestamp) and never touches the first; an
    existing ``run_id`` is refused unless ``overwrite`` (then every step runs again). A failing
    notebook stops the run with its name and failing cell, and what finished is kept.

    ``resume`` (True: ``<outputs>/<run_id>``; or the run folder) continues a run from its
    ``state.json``: a step is reused when its outputs are complete and it would run with the
    recorded parameters, an unfinished training run continues from its last completed epoch, and
    a step whose parameters changed is refused (one line naming it and the keys) unless
    ``overwrite``, which reruns the changed steps and those downstream of them. ``params_file``
    None: the copy of the parameter file the run keeps (``<run>/parameters.yaml``).
    SIGTERM stops the run (:class:`~pedgm_kit.runstate.Preempted`, exit status 143), a training run
    after its current batch, keeping its last completed epoch.
    """
    from tqdm.auto import tqdm

    from .evaluate.cache import prediction_cache
    from .io import write_text
    from .report import write_report

    started = time.time()
    if resume:
        if resume is True:
            if run_id is None:
                raise ParameterError("--resume needs the run folder or --run-id")
            run = Path(outputs) / check_run_id(run_id)
        else:
            run = Path(resume)
        if not run.is_dir():
            raise InputFileError(f"No run folder '{run}' to resume")
        previous = load_state(run)
        if previous is None:
            raise InputFileError(f"{run}: no state.json (a run folder written before runs recorded their state); "
                                 "start it again with --overwrite or use a new --run-id")
        params_file = params_file or RunLayout(run).parameters
    elif params_file is None:
        raise ParameterError("--params is required (except with --resume)")
    params = load_params(params_file)
    if not resume:
        run_id = check_run_id(time.strftime("run-%Y%m%d-%H%M%S") if run_id is None else run_id)
        run = Path(outputs) / run_id
        if run.exists() and not overwrite:
            raise PedgmError(f"run folder '{run}' exists; choose another --run-id, pass --overwrite, "
                             "or --resume it")
        previous = None
    steps = pipeline_steps(params, run)
    state = RunState(run, steps, previous)
    actions = resume_actions(state, overwrite=overwrite) if resume else {s.name: "rerun" for s in steps}
    run.mkdir(parents=True, exist_ok=True)
    kept = RunLayout(run).parameters  # what --resume uses without --params
    if Path(params_file).resolve() != kept.resolve():
        write_text(Path(params_file).read_text(encoding="utf-8"), kept)
    todo = [s for s in steps if actions[s.name] != "reuse"]
    for step in steps:
        if actions[step.name] == "reuse":
            state.reuse(step.name)
    if progress and resume:
        print(f"pedgm run: resuming {run}: {len(steps) - len(todo)} step(s) reused, {len(todo)} to run",
              file=sys.stderr)
    state.save()
    _write_plan(params, training_plan(params, data_dir=RunLayout(run).arrays, train_dir=RunLayout(run).train))
    bar = tqdm(todo, desc="pipeline", unit="step", disable=not progress)
    cache = prediction_cache(run / PREDICTION_CACHE_DIR)  # each (model, test scan) is segmented once
    cache.__enter__()
    try:
        for step in bar:
            bar.set_postfix_str(step.name)
            if actions[step.name] == "rerun":
                state.records[step.name]["seconds_before"] = None
                if step.training:  # changed parameters: start afresh, not from the old run's last epoch
                    shutil.rmtree(Path(step.parameters["output_dir"]) / step.parameters["variant"] / "backup",
                                  ignore_errors=True)
            step.folder.mkdir(parents=True, exist_ok=True)
            with _StopOnSigterm(run, training=step.training) as stop:
                state.start(step.name)
                try:
                    if step.notebook is None:
                        write_report(run, params_file=params_file, params=params, seconds=time.time() - started)
                    else:
                        run_notebook(step.notebook, step.folder / step.notebook, step.parameters,
                                     stream=progress and step.training)
                except (Preempted, KeyboardInterrupt):
                    state.finish(step.name, "interrupted")
                    if stop.requested:
                        raise Preempted(_stopped(step, run)) from None
                    raise
                except BaseException:
                    state.finish(step.name, "interrupted" if stop.requested else "failed")
                    if stop.requested:  # e.g. the kernel got SIGTERM too, before training began
                        raise Preempted(_stopped(step, run)) from None
                    raise
                state.finish(step.name, "done")
                if stop.requested:
                    raise Preempted(_stopped(step, run, finished=True))
    finally:
        cache.__exit__(None, None, None)
        bar.close()  # before any error line: the last line a stopped run prints is its reason
    return run


def _stopped(step: Step, run: Path, *, finished: bool = False) -> str:
    what = ("after it finished" if finished else
            "its last completed epoch is kept" if step.training else "it will run again")
    return f"stopped by SIGTERM in step {step.name} ({what}); continue with: pedgm run --resume {run}"
