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
job-array task per run, so a failed fold can be rerun alone. Runs resume where they stopped.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data_creation import fold_data_dir
from .datasets import FOLDER_OPTIONS
from .exceptions import InputFileError, ParameterError, PedgmError
from .params import NOTEBOOKS, load_params
from .registry import BUILTIN_MODELS

__all__ = ["TrainRun", "check_run_id", "run_notebook", "run_pipeline", "slurm_script", "train_variants",
           "training_plan"]

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
    folds = int(params.get("data", {}).get("cv_folds", 0) or 0)
    data_root = Path(data_dir or train.get("data_dir", "outputs/data/data"))
    train_root = Path(train_dir or train.get("output_dir", "outputs/train"))
    runs = []
    for fold in range(1, folds + 1) if folds else [0]:
        fold_data = fold_data_dir(data_root, fold) if fold else data_root
        fold_train = train_root / f"fold-{fold}" if fold else train_root
        for name in variants:
            runs.append(TrainRun(fold, name, 0, {**train, **every[name], "variant": name, "train_persons": 0,
                                                 "data_dir": str(fold_data), "output_dir": str(fold_train)}))
        for n in sorted(set(s for s in sizes if s)):
            for name in curve:
                runs.append(TrainRun(fold, name, n, {**train, **every[name], "variant": name, "train_persons": n,
                                                     "data_dir": str(fold_data),
                                                     "output_dir": str(fold_train / f"persons-{n}")}))
    return runs


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
        if variant not in _all_variants():
            raise ParameterError(f"variant must be one of {', '.join(_all_variants())} (or --all), got {variant!r}")
        chosen = [r for r in plan if r.variant == variant and r.persons == 0 and (fold is None or r.fold == fold)]
    if not chosen:
        folds = sorted({r.fold for r in plan})
        raise ParameterError(f"no training run matches (folds in the plan: {folds}; variants: "
                             f"{sorted({r.variant for r in plan})})")
    done = []
    for run in tqdm(chosen, desc="training", unit="run", disable=not progress):
        done.append(run_notebook("04_train.ipynb", run.notebook, run.parameters, stream=progress))
    return done


def slurm_script(params_file: str | os.PathLike, *, variants: list[str] | None = None, gpus: int = 1,
                 time: str = "04:00:00", mem: str = "32G", cpus: int = 8, partition: str = "",
                 account: str = "", venv: str = ".venv", job_name: str = "pedgm-train") -> str:
    """A SLURM job-array script: one task per training run of the plan (fold x variant x subset).

    ``variants`` restricts the plan to those variants. Each task runs
    ``pedgm train --params FILE --task $SLURM_ARRAY_TASK_ID``; a failed task is rerun alone with the
    same command and its task number (or ``--fold K --variant V``).
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
        f'pedgm train --params {shlex.quote(str(params_file))} --task "$SLURM_ARRAY_TASK_ID"',
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


def run_pipeline(params_file: str | os.PathLike, *, outputs: str | os.PathLike = "outputs", run_id: str | None = None,
                 overwrite: bool = False, progress: bool = True) -> Path:
    """Run notebooks 01 -> 05 (every training run in 04) into ``<outputs>/<run_id>/``; returns the run folder.

    Each notebook's paths are set to the run folder (the parameter file supplies everything else);
    executed notebooks are kept beside their outputs and ``index.html`` (:mod:`pedgm_kit.report`)
    links the results. A second run gets a new run id (a timestamp) and never touches the first; an
    existing ``run_id`` is refused unless ``overwrite``. A failing notebook stops the run with its
    name and failing cell, and what finished is kept.
    """
    from tqdm.auto import tqdm

    from .shift import parse_shift

    started = time.time()
    params = load_params(params_file)
    run_id = check_run_id(time.strftime("run-%Y%m%d-%H%M%S") if run_id is None else run_id)
    run = Path(outputs) / run_id
    if run.exists() and not overwrite:
        raise PedgmError(f"run folder '{run}' exists; choose another --run-id or pass --overwrite")
    pre = dict(params.get("preprocess", {}))
    shift = parse_shift(pre.get("shift", ""))
    plan = training_plan(params, data_dir=run / "data" / "data", train_dir=run / "train")
    folds = int(params.get("data", {}).get("cv_folds", 0) or 0)
    run.mkdir(parents=True, exist_ok=True)
    layout = {k: v for k, v in pre.items() if k in ("data_dir", "layout", *FOLDER_OPTIONS)}
    if shift is not None:  # notebook 05 evaluates on the simulated copy notebook 01 writes
        layout["data_dir"] = str(run / "preprocess" / f"simulated-{shift.name}")
    steps = [
        ("01_preprocess.ipynb", run / "preprocess", {**pre, "output_dir": str(run / "preprocess")}),
        ("02_data_creation.ipynb", run / "data", {**params.get("data", {}), "output_dir": str(run / "data"),
                                                 "preprocessed_dir": str(run / "preprocess" / "preprocessed")}),
        ("03_augment.ipynb", run / "augment", {**params.get("augment", {}), "output_dir": str(run / "augment"),
                                              "data_dir": str(fold_data_dir(run / "data" / "data", 1) if folds
                                                              else run / "data" / "data")}),
    ]
    steps += [("04_train.ipynb", r.notebook.parent, r.parameters) for r in plan]
    models = {name: name for name in BUILTIN_MODELS}
    template = run / "train" / ("fold-{fold}" if folds else "")
    models.update({r.variant: str(template / r.variant / "best.hdf5") for r in plan if r.persons == 0})
    evaluate = {**params.get("evaluate", {}), **layout, "output_dir": str(run), "models": models,
                "split_manifest": str(run / "data" / "manifest.json"), "cord_scale": pre.get("cord_scale", ""),
                "train_dir": "",
                "shift_label": shift.label if shift else "",
                "curve_dir": str(run / "train") if any(r.persons for r in plan) else ""}
    steps.append(("05_evaluate.ipynb", run, evaluate))
    bar = tqdm(steps, desc="pipeline", unit="notebook", disable=not progress)
    for notebook, folder, parameters in bar:
        bar.set_postfix_str(parameters.get("variant", notebook.removesuffix(".ipynb")))
        folder.mkdir(parents=True, exist_ok=True)
        run_notebook(notebook, folder / notebook, parameters, stream=progress and notebook == "04_train.ipynb")
    from .report import write_report

    write_report(run, params_file=params_file, params=params, seconds=time.time() - started)
    return run
