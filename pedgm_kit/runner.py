"""Headless runs of the numbered notebooks: parameter files, papermill, SLURM job arrays.

A parameter file is YAML. Its top-level keys name notebook sections (``preprocess``, ``data``,
``augment``, ``train``, ``evaluate``), each a mapping of that notebook's papermill parameters; a file
without sections is taken as the ``train`` section. ``pedgm train --params FILE --all`` runs
``04_train.ipynb`` once per variant (``pretrained_aug``, ``pretrained_noaug``, ``scratch_aug``,
``scratch_noaug``), each executed notebook saved beside the variant's outputs.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from .datasets import FOLDER_OPTIONS
from .exceptions import InputFileError, ParameterError, PedgmError
from .io import write_text
from .params import NOTEBOOKS, load_params
from .registry import BUILTIN_MODELS
from .train import VARIANTS

__all__ = ["NOTEBOOKS", "load_params", "run_notebook", "slurm_script", "train_variants"]


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SLURM_TIME = re.compile(r"(\d+-)?\d{1,3}(:\d{2}){0,2}|\d+-\d{1,2}")
_SLURM_MEM = re.compile(r"\d+[KMGT]?")


def run_notebook(notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict, *,
                 cwd: str | os.PathLike | None = None, progress: bool = False, stream: bool = False) -> Path:
    """Execute a notebook with papermill; a failure names the notebook, the cell and the error.

    ``stream`` echoes the notebook's output to stderr as it runs (e.g. one line per training epoch).
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
                                   progress_bar=progress, cwd=str(cwd) if cwd else None, log_output=stream)
    except papermill.PapermillExecutionError as err:
        raise PedgmError(
            f"{notebook.name} failed in cell {err.exec_count} ({err.ename}: {str(err.evalue).splitlines()[0] if err.evalue else ''}); "
            f"executed notebook kept at {output}"
        ) from None
    return output


def _variants(variant: str | None, all_variants: bool) -> list[str]:
    if all_variants:
        return list(VARIANTS)
    if variant not in VARIANTS:
        raise ParameterError(f"variant must be one of {', '.join(VARIANTS)} (or --all), got {variant!r}")
    return [variant]


def train_variants(params_file: str | os.PathLike, *, variant: str | None = None, all_variants: bool = False,
                   output_dir: str | os.PathLike | None = None, progress: bool = True) -> list[Path]:
    """Run ``04_train.ipynb`` for one or all four variants; returns the executed notebooks."""
    from tqdm.auto import tqdm

    params = dict(load_params(params_file).get("train", {}))
    if output_dir is not None:
        params["output_dir"] = str(output_dir)
    run_dir = Path(params.get("output_dir", "outputs/train"))
    done = []
    for name in tqdm(_variants(variant, all_variants), desc="variants", unit="variant", disable=not progress):
        pretrained, augment = VARIANTS[name]
        run = {**params, "pretrained": pretrained, "augment": augment, "variant": name, "output_dir": str(run_dir)}
        done.append(run_notebook("04_train.ipynb", run_dir / name / "04_train.ipynb", run, stream=progress))
    return done


def slurm_script(params_file: str | os.PathLike, *, variants: list[str] | None = None, gpus: int = 1,
                 time: str = "04:00:00", mem: str = "32G", cpus: int = 8, partition: str = "",
                 account: str = "", venv: str = ".venv", job_name: str = "pedgm-train") -> str:
    """A SLURM job-array script: one task per variant, each running ``pedgm train --variant``."""
    variants = list(variants or VARIANTS)
    problems = [f"unknown variant {v!r} (one of {', '.join(VARIANTS)})" for v in variants if v not in VARIANTS]
    problems += [f"variant {v!r} given twice" for v in dict.fromkeys(v for v in variants if variants.count(v) > 1)]
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
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{len(variants) - 1}",
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
    lines += [
        "set -euo pipefail",
        f"VARIANTS=({' '.join(variants)})",
        'VARIANT="${VARIANTS[$SLURM_ARRAY_TASK_ID]}"',
        f"source {shlex.quote(venv)}/bin/activate",
        'echo "pedgm: training $VARIANT on $(hostname)"',
        f'pedgm train --params {shlex.quote(str(params_file))} --variant "$VARIANT"',
        "",
    ]
    return "\n".join(lines)


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
    """Run notebooks 01 -> 05 (the four variants in 04) into ``<outputs>/<run_id>/``; returns the run folder.

    Each notebook's paths are set to the run folder (the parameter file supplies everything else);
    executed notebooks are kept beside their outputs and ``index.html`` links the results. A second
    run gets a new run id (a timestamp) and never touches the first; an existing ``run_id`` is
    refused unless ``overwrite``. A failing notebook stops the run with its name and failing cell,
    and what finished is kept.
    """
    import time

    from tqdm.auto import tqdm

    params = load_params(params_file)
    run_id = check_run_id(time.strftime("run-%Y%m%d-%H%M%S") if run_id is None else run_id)
    run = Path(outputs) / run_id
    if run.exists() and not overwrite:
        raise PedgmError(f"run folder '{run}' exists; choose another --run-id or pass --overwrite")
    run.mkdir(parents=True, exist_ok=True)
    layout = {k: v for k, v in params.get("preprocess", {}).items() if k in ("data_dir", "layout", *FOLDER_OPTIONS)}
    train_dir = run / "train"
    steps = [
        ("01_preprocess.ipynb", run / "preprocess", {**params.get("preprocess", {}), "output_dir": str(run / "preprocess")}),
        ("02_data_creation.ipynb", run / "data", {**params.get("data", {}), "output_dir": str(run / "data"),
                                                 "preprocessed_dir": str(run / "preprocess" / "preprocessed")}),
        ("03_augment.ipynb", run / "augment", {**params.get("augment", {}), "output_dir": str(run / "augment"),
                                              "data_dir": str(run / "data" / "data")}),
    ]
    for name, (pretrained, augment) in VARIANTS.items():
        steps.append(("04_train.ipynb", train_dir / name, {
            **params.get("train", {}), "data_dir": str(run / "data" / "data"), "output_dir": str(train_dir),
            "variant": name, "pretrained": pretrained, "augment": augment}))
    models = {name: name for name in BUILTIN_MODELS}
    models.update({name: str(train_dir / name / "best.hdf5") for name in VARIANTS})
    steps.append(("05_evaluate.ipynb", run, {**params.get("evaluate", {}), **layout, "output_dir": str(run),
                                             "models": models, "split_manifest": str(run / "data" / "manifest.json")}))
    bar = tqdm(steps, desc="pipeline", unit="notebook", disable=not progress)
    for notebook, folder, parameters in bar:
        label = parameters.get("variant", notebook.removesuffix(".ipynb"))
        bar.set_postfix_str(label)
        folder.mkdir(parents=True, exist_ok=True)
        run_notebook(notebook, folder / notebook, parameters, stream=progress and notebook == "04_train.ipynb")
    write_report(run)
    return run


def write_report(run: str | os.PathLike) -> Path:
    """``index.html`` of a pipeline run: results table, figures and links, readable without Jupyter."""
    import html
    import json

    run = Path(run)
    parts = [f"<h1>pedgm_kit run {html.escape(run.name)}</h1>"]
    results = run / "evaluation" / "results.json"
    if results.is_file():
        res = json.loads(results.read_text())
        parts.append(f"<p>{html.escape(str(res.get('scope', '')))}</p>")
        summary = run / "evaluation" / "summary.md"
        if summary.is_file():
            parts.append(f"<h2>Summary</h2><pre>{html.escape(summary.read_text())}</pre>")
    for title, pattern in (("Evaluation figures", "evaluation/*.png"), ("Learning curves", "train/*/learning_curve.png"),
                           ("Data splits", "data/*.png"), ("Augmentation", "augment/*.png"), ("QC montages", "preprocess/qc/*.png")):
        images = sorted(run.glob(pattern))
        if images:
            parts.append(f"<h2>{title}</h2>")
            parts += [f'<figure><img src="{p.relative_to(run)}" style="max-width:100%"><figcaption>'
                      f"{html.escape(str(p.relative_to(run)))}</figcaption></figure>" for p in images]
    links = sorted(p for p in run.rglob("*") if p.suffix in (".ipynb", ".csv", ".xlsx", ".json", ".md", ".hdf5", ".onnx"))
    parts.append("<h2>Files</h2><ul>" + "".join(
        f'<li><a href="{p.relative_to(run)}">{html.escape(str(p.relative_to(run)))}</a></li>' for p in links) + "</ul>")
    page = "<!doctype html><meta charset='utf-8'><title>pedgm_kit run</title><body style='font-family:sans-serif'>"
    return write_text(page + "\n".join(parts) + "</body>", run / "index.html")
