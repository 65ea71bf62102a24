"""Headless runs of the numbered notebooks: parameter files, papermill, SLURM job arrays.

A parameter file is YAML. Its top-level keys name notebook sections (``preprocess``, ``data``,
``augment``, ``train``, ``evaluate``), each a mapping of that notebook's papermill parameters; a file
without sections is taken as the ``train`` section. ``pedgm train --params FILE --all`` runs
``04_train.ipynb`` once per variant (``pretrained_aug``, ``pretrained_noaug``, ``scratch_aug``,
``scratch_noaug``), each executed notebook saved beside the variant's outputs.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import yaml

from .datasets import FOLDER_OPTIONS
from .exceptions import InputFileError, ParameterError, PedgmError
from .io import write_text
from .registry import BUILTIN_MODELS
from .train import VARIANTS

__all__ = ["NOTEBOOKS", "load_params", "run_notebook", "slurm_script", "train_variants"]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SECTIONS = ("preprocess", "data", "augment", "train", "evaluate")


def load_params(path: str | os.PathLike) -> dict[str, dict]:
    """Read a YAML parameter file into ``{section: {parameter: value}}``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' (parameter file)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputFileError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a mapping of parameters, got {type(data).__name__}")
    if not any(key in SECTIONS for key in data):
        data = {"train": data}
    unknown = [key for key in data if key not in SECTIONS]
    if unknown:
        raise InputFileError(f"{path}: unknown sections {unknown}; expected some of {list(SECTIONS)}")
    for key, value in data.items():
        if not isinstance(value, dict):
            raise InputFileError(f"{path}: section '{key}' must be a mapping, got {type(value).__name__}")
    return data


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
    variants = variants or list(VARIANTS)
    bad = [v for v in variants if v not in VARIANTS]
    if bad or gpus < 0 or cpus < 1:
        raise ParameterError(f"bad SLURM settings: variants {bad or 'ok'}, gpus={gpus!r}, cpus={cpus!r}")
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
    run_id = run_id or time.strftime("run-%Y%m%d-%H%M%S")
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
