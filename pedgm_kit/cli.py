"""The ``pedgm`` command line.

``get_parser()`` builds the parser; ``main(argv=None) -> int`` runs it, so tests call ``main([...])``.
User errors (:class:`~pedgm_kit.exceptions.PedgmError`, bad arguments) print one line to stderr and
exit with status 2; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from .exceptions import PedgmError
from .layout import RunLayout
from .schema import ENGINES, EXPORT_FORMATS, FINAL_MODES, PADDINGS, UNCERTAINTY_METHODS

__all__ = ["get_parser", "main"]


def get_parser() -> argparse.ArgumentParser:
    """Build the ``pedgm`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="pedgm",
        description="Spinal cord gray-matter segmentation with sct_deepseg_gm weights, and transfer learning.",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = sub.add_parser("fetch", help="fetch and verify weights and sample data")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help="challenge, large, models, gm-challenge-data, sct_testing_data, or a registry path")
    fetch.add_argument("--all", action="store_true", help="fetch every registered file")

    seg = sub.add_parser(
        "segment", help="segment gray matter in NIfTI scans (one, several, a folder, or a BIDS dataset)",
        description="Segment GM with one loaded model. Several images or a folder: one progress bar, a bad file "
                    "is reported and skipped (exit status 2 at the end), scans already segmented are skipped "
                    "unless --overwrite, and a CSV summary is written.")
    seg.add_argument("images", nargs="+", metavar="IMAGE",
                     help="3D NIfTI image(s) (.nii/.nii.gz) or folder(s) of images; with --bids, the BIDS root")
    seg.add_argument("-o", "--output", help="output path for a single image (default: <input>_gmseg.nii.gz beside it)")
    seg.add_argument("--output-dir", help="folder for the outputs of several images (default: beside each input)")
    seg.add_argument("--bids", action="store_true",
                     help="IMAGE is a BIDS root: write derivatives/<pipeline>/sub-*/[ses-*/]anat/<image>_gmseg.nii.gz")
    seg.add_argument("--pipeline", default="pedgm_kit", help="derivative folder name with --bids (default pedgm_kit)")
    seg.add_argument("--csv", help="summary CSV (default: gmseg_summary.csv in the output folder for several images)")
    seg.add_argument("-m", "--model", default="challenge",
                     help="challenge (default), large, or a .hdf5 weights file with its .json beside it")
    seg.add_argument("--cord-mask",
                     help="spinal cord mask on the image grid: one image: centres the windows on it (and WM area, "
                          "GM/cord ratio with --morphometrics); several images: a folder of <image>_seg[-manual] "
                          "masks for the morphometrics")
    seg.add_argument("--levels", help="vertebral level labels (SCT's _labels convention) on the image grid, or a folder "
                                      "of <image>_labels files: morphometrics per level")
    seg.add_argument("--morphometrics", action="store_true",
                     help="one image: also write <output>_morphometrics.csv (several images always write "
                          "morphometrics.csv and qc/index.html beside the summary CSV)")
    seg.add_argument("-t", "--threshold", type=float, default=None,
                     help="probability threshold (default from the model metadata, 0.999); 0 writes probabilities")
    seg.add_argument("--tta", action="store_true", help="test-time augmentation (9 passes, seeded)")
    seg.add_argument("--seed", type=int, default=0, help="seed of the TTA offsets (default 0)")
    seg.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    seg.add_argument("--engine", default="auto", choices=ENGINES,
                     help="what runs the network (default auto: OpenVINO when installed, else XLA-compiled Keras, "
                          "with TensorFlow; identical masks)")
    seg.add_argument("--padding", default=None, choices=PADDINGS,
                     help="what fills the window beyond a small field of view (default: see pedgm_kit.segment)")
    seg.add_argument("--uncertainty", nargs="?", const=UNCERTAINTY_METHODS[0], choices=UNCERTAINTY_METHODS,
                     help="also write <output>_uncertainty.nii.gz and per-slice scores (.csv): the spread over 9 "
                          "seeded passes (default tta: intensity offsets; mc_dropout: dropout active)")
    seg.add_argument("--cord-scale", default=None,
                     help="'auto' or a number: resample small (e.g. pediatric) cords to the adult size first")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    ev = sub.add_parser(
        "evaluate",
        help="score a predicted GM mask against a manual one (the ten SCGM-challenge metrics)",
        description="Print DSC, JI, CC, TPR, TNR, PPV, MSD, HSD, SHD, SMD (distances in mm) of a predicted "
                    "mask against a manual mask on the same grid. By default only the labelled slices (where "
                    "the manual mask has GM) are scored.",
    )
    ev.add_argument("--pred", required=True, help="predicted 0/1 mask (.nii or .nii.gz), e.g. from pedgm segment")
    ev.add_argument("--gt", required=True, help="manual 0/1 mask on the same grid")
    ev.add_argument("--per-slice", action="store_true", help="also print one row per scored slice")
    ev.add_argument("--all-slices", action="store_true",
                    help="score every slice, not only the labelled ones "
                         "(an unlabelled slice with predicted GM scores DSC 0)")
    ev.add_argument("--json", metavar="OUT", help="also write the results as JSON (written atomically)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --json file")

    tr = sub.add_parser("train", help="train the transfer-learning variants (notebook 04 through papermill)")
    tr.add_argument("--params", required=True, help="YAML parameter file (its 'train' section), e.g. parameters/demo.yaml")
    which = tr.add_mutually_exclusive_group(required=True)
    which.add_argument("--variant", help="pretrained_aug, pretrained_noaug, scratch_aug, scratch_noaug or pretrained_adapted")
    which.add_argument("--all", action="store_true", help="every run of the plan (all folds, variants and subsets)")
    which.add_argument("--task", type=int, help="one run of the plan by its number (a SLURM array task)")
    tr.add_argument("--fold", type=int, help="only this cross-validation fold (with --variant or --all)")
    tr.add_argument("--output-dir", help="run folder (default: the parameter file's output_dir)")
    tr.add_argument("--final", nargs="?", const="", default=None, metavar="{" + ",".join(FINAL_MODES) + "}",
                    help="with --variant: make the deliverable model of that (cross-validated) variant in "
                         "<output-dir>/final/<variant>, with its model card: 'ensemble' packages the fold models as one; "
                         "'retrain_all' trains the variant once on all non-locked persons (epochs: the folds' median "
                         "best epoch). Default: the parameter file's pipeline.final, else ensemble")
    tr.add_argument("--overwrite", action="store_true", help="with --final: replace an existing deliverable")

    rn = sub.add_parser("run", help="run notebooks 01-05 (four variants) on a parameter file; index.html report")
    rn.add_argument("--params", help="YAML parameter file with notebook sections, e.g. parameters/demo.yaml "
                                     "(with --resume: default the run's own parameters.yaml)")
    rn.add_argument("--outputs", default="outputs", help="parent folder of run folders (default outputs)")
    rn.add_argument("--run-id", help="run folder name (default: run-<timestamp>, never reused)")
    rn.add_argument("--overwrite", action="store_true",
                    help="reuse an existing --run-id folder; with --resume: rerun the steps whose parameters changed")
    # resuming (run state in <run>/state.json; SIGTERM exits with status 143, the last epoch kept)
    rn.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_FOLDER",
                    help="continue a run (RUN_FOLDER, or --outputs/--run-id): finished steps with unchanged "
                         "parameters are reused, a cut training run continues from its last completed epoch")
    st = sub.add_parser("status", help="a run's steps (pending/running/done/failed/interrupted) and the time left")
    st.add_argument("run", help="run folder (outputs/<run-id>)")

    sl = sub.add_parser("slurm", help="write a SLURM job-array script (one task per training run: fold x variant)")
    sl.add_argument("--params", required=True, help="YAML parameter file passed on to pedgm train")
    sl.add_argument("--out", required=True, help="script to write, e.g. job.sbatch")
    sl.add_argument("--variants", nargs="+", help="only these variants (default: every run of the plan)")
    sl.add_argument("--gpus", type=int, default=1, help="GPUs per task (default 1)")
    sl.add_argument("--time", default="04:00:00", help="time limit per task (default 04:00:00)")
    sl.add_argument("--mem", default="32G", help="memory per task (default 32G)")
    sl.add_argument("--cpus", type=int, default=8, help="CPU cores per task (default 8)")
    sl.add_argument("--partition", default="", help="SLURM partition")
    sl.add_argument("--account", default="", help="SLURM account")
    sl.add_argument("--venv", default=".venv", help="virtual environment to activate (default .venv)")
    sl.add_argument("--overwrite", action="store_true", help="replace an existing script")

    ex = sub.add_parser("export", help="export weights for SCT: ONNX (input_1 -> predictions) or legacy HDF5")
    ex.add_argument("--model", required=True, help="challenge, large, or a .hdf5 weights file (.json beside it)")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default=EXPORT_FORMATS[0], help="onnx (default) or hdf5")
    ex.add_argument("--out", required=True, help="existing folder to write <name>.onnx/.hdf5 and <name>.json into")
    ex.add_argument("--overwrite", action="store_true", help="replace existing files")
    mc = sub.add_parser("model-card", help="print a model's card (training persons and sites, recipe, threshold, "
                                           "Dice, sha256); built from its run folder when it has none")
    mc.add_argument("model", help="a .hdf5/.onnx weights file, a variant folder, or <run>/train/<variant> (fold ensemble)")
    mc.add_argument("--json", action="store_true", help="print the JSON card instead of the Markdown")
    mc.add_argument("--write", action="store_true", help="save model_card.json/.md beside the model if it has none")
    mc.add_argument("--overwrite", action="store_true", help="with --write: replace an existing card")
    for command in sub.choices.values():  # --verbose after the command too (pedgm segment x --verbose)
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    return parser


def _cmd_fetch(args) -> int:
    from .registry import GROUPS, fetch_group, load_registry

    registry = load_registry()
    names = sorted(GROUPS) if args.all else args.names
    if not names:
        raise PedgmError("nothing to fetch: name one of " + ", ".join(sorted(GROUPS)) + " or pass --all")
    for name in names:
        where = fetch_group(name, registry=registry)
        print(f"{name}: {where}")
    return 0


def _cmd_segment(args) -> int:
    from pathlib import Path

    from .exceptions import ParameterError
    from .segment import (
        DEFAULT_PADDING,
        find_images,
        segment_bids,
        segment_file,
        segment_files,
    )

    cord_scale = args.cord_scale
    if cord_scale not in (None, "auto"):
        try:
            cord_scale = float(cord_scale)
        except ValueError:
            raise ParameterError(f"--cord-scale must be 'auto' or a number, got {cord_scale!r}") from None
    options = {"threshold": args.threshold, "tta": args.tta, "seed": args.seed, "uncertainty": args.uncertainty,
               "cord_scale": cord_scale}
    single = not args.bids and len(args.images) == 1 and not Path(args.images[0]).is_dir()
    # hostile input, round two: --output-dir and --csv are honoured or refused, never ignored
    from .io import check_output_path, default_output_path

    if args.output and args.output_dir:
        raise ParameterError("give -o/--output (one file) or --output-dir (a folder), not both")
    if single and args.csv:
        raise ParameterError("--csv is the summary table of several images or of --bids; one image writes none")
    if single and args.output_dir:  # one image into a folder, created (and removed again if the run fails)
        from .segment.cohort import made_folders

        args.output, folder, args.output_dir = str(Path(args.output_dir) / default_output_path(args.images[0]).name), \
            args.output_dir, None
        with made_folders(folder):
            return _cmd_segment(args)
    if args.csv:  # an explicit --csv is an output like any other: never replaced without --overwrite
        check_output_path(args.csv, overwrite=args.overwrite, suffixes=(".csv",), what="--csv", inputs=args.images)
    if args.threshold is not None and 0 < args.threshold < 0.01:
        import warnings

        warnings.warn(f"threshold {args.threshold:g} is below 0.01: almost every voxel the network sees will be "
                      "labelled GM (0 writes the probabilities instead)", stacklevel=1)
    if args.output and not single:
        raise ParameterError("-o/--output names one output: use --output-dir for several images")
    if args.cord_mask and not single and not Path(args.cord_mask).is_dir():
        raise ParameterError("--cord-mask with several images must be a folder of <image>_seg masks")
    if args.levels and not single and not Path(args.levels).is_dir():
        raise ParameterError("--levels with several images must be a folder of <image>_labels files")
    if args.bids and len(args.images) != 1:
        raise ParameterError("--bids takes exactly one BIDS root")
    images = None if single or args.bids else find_images(args.images)
    from .segment.ensemble import load_segmenter

    model = load_segmenter(args.model, batch_size=args.batch_size, engine=args.engine,
                           padding=args.padding or DEFAULT_PADDING)
    _print_model_card_line(args.model)
    if single:
        from .morphometrics import morphometrics_path

        table_path = None
        if args.morphometrics or args.levels:  # check the inputs and where it goes before any work
            from .morphometrics import check_companions

            check_companions(args.images[0], cord=args.cord_mask, levels=args.levels)
            output = Path(args.output) if args.output else default_output_path(args.images[0])
            table_path = check_output_path(morphometrics_path(output), overwrite=args.overwrite, suffixes=(".csv",),
                                           what="morphometrics CSV")
        written = segment_file(args.images[0], args.output, overwrite=args.overwrite, model=model,
                               cord_mask=args.cord_mask, **options)
        print(written)
        if table_path is not None:
            from .morphometrics import scan_morphometrics, write_table

            print(write_table(scan_morphometrics(written, cord=args.cord_mask, levels=args.levels), table_path))
        return 0
    if args.bids:
        table = segment_bids(args.images[0], pipeline=args.pipeline, model=model, overwrite=args.overwrite,
                             output_dir=args.output_dir, csv=args.csv, **options)
        csv = table.attrs["csv"]
    else:
        folder = Path(args.output_dir) if args.output_dir else Path(images[0]).parent
        csv = Path(args.csv) if args.csv else folder / "gmseg_summary.csv"
        from .morphometrics import CORD_SUFFIXES, LEVEL_SUFFIXES, match_mask

        cords = [match_mask(p, args.cord_mask, suffixes=CORD_SUFFIXES) for p in images]
        levels = [match_mask(p, args.levels, suffixes=LEVEL_SUFFIXES) for p in images]
        table = segment_files(images, output_dir=args.output_dir, model=model, overwrite=args.overwrite, csv=csv,
                              cord_masks=cords, levels=levels, **options)
    done = table["status"].value_counts().to_dict()
    print(f"{len(table)} scans: {done.get('ok', 0)} segmented, {done.get('skipped', 0)} skipped (output exists), "
          f"{done.get('failed', 0)} failed; summary: {csv}")
    if "qc" in table.attrs:
        print(f"morphometrics: {table.attrs['morphometrics']}; QC page: {table.attrs['qc']}")
    for _, row in table[table["status"] == "failed"].iterrows():
        print(f"pedgm segment: error: {row['error']}", file=sys.stderr)
    for file, message in table.attrs.get("morphometrics_errors", []):
        print(f"pedgm segment: warning: morphometrics of {file}: {message}", file=sys.stderr)
    return 2 if table.attrs["failed"] else 0


def _print_model_card_line(model) -> None:
    """``pedgm segment --model X``: the card's one line on stderr (a note when X has none)."""
    from .registry import BUILTIN_MODELS

    if str(model) in BUILTIN_MODELS:
        return
    from .model_card import card_for, summary_line

    card, found = card_for(model, write=True)  # a model without a card gets one from its run folder's files
    if found:
        print(f"pedgm segment: model: {summary_line(card)}", file=sys.stderr)
    else:
        print(f"pedgm segment: note: {model} had no model card; built from its files: {summary_line(card)}",
              file=sys.stderr)


def _cmd_model_card(args) -> int:
    from .model_card import card_for, card_markdown, write_card

    card, found = card_for(args.model)
    if args.write and (not found or args.overwrite):
        for path in write_card(args.model, card, overwrite=True):
            print(f"written: {path}", file=sys.stderr)
    if args.json:
        import json

        print(json.dumps(card, indent=2))
    else:
        print(card_markdown(card))
    return 0


def _cmd_evaluate(args) -> int:
    import pandas as pd

    from .evaluate import score_pair
    from .io import check_output_path, write_json
    from .metrics import METRICS

    out = None
    if args.json:  # check the destination before any work
        out = check_output_path(args.json, overwrite=args.overwrite, suffixes=(".json",), inputs=(args.pred, args.gt),
                                what="--json")
    scan, slices = score_pair(args.pred, args.gt, labelled_only=not args.all_slices)
    row = scan.iloc[0]
    print(f"pred: {args.pred}")
    print(f"gt:   {args.gt}")
    print(f"scored: {row['scope']} ({row['n_scored_slices']} of {row['n_slices']} slices); distances in mm, CC in %")
    names = list(METRICS) + ["gm_area_mm2", "manual_gm_area_mm2"]
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {row[name]:.4f}")
    if args.per_slice:
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.float_format", "{:.4f}".format):
            print(slices.to_string(index=False))
    if out is not None:
        report = {
            "pred": str(args.pred), "gt": str(args.gt), "scope": row["scope"],
            "n_slices": int(row["n_slices"]), "n_scored_slices": int(row["n_scored_slices"]),
            "spacing_mm": scan.attrs["spacing_mm"], "slice_axis": scan.attrs["axis"],
            "scan": {name: row[name] for name in names},
        }
        if args.per_slice:
            report["slices"] = slices.to_dict(orient="records")
        write_json(report, out)
        print(f"json: {out}")
    return 0


def _cmd_train(args) -> int:
    from .runner import train_variants

    if args.final is not None:
        return _train_final(args)

    for notebook in train_variants(args.params, variant=args.variant, all_variants=args.all, fold=args.fold,
                                   task=args.task, output_dir=args.output_dir):
        print(notebook)
    return 0


def _train_final(args) -> int:
    from .deliver import deliver
    from .exceptions import ParameterError
    from .params import load_params

    if not args.variant or args.fold is not None:
        raise ParameterError("--final delivers one variant's model: give --variant V (without --fold)")
    params = load_params(args.params)
    train_dir = args.output_dir or params.get("train", {}).get("output_dir", "outputs/train")
    mode = args.final or params.get("pipeline", {}).get("final") or FINAL_MODES[0]
    package = deliver(train_dir, args.variant, final=mode, overwrite=args.overwrite,
                      data_dir=params.get("train", {}).get("data_dir") or None, verbose=2)
    print(package)
    print(f"use it: pedgm segment <scans> --model {package}")
    return 0


def _cmd_run(args) -> int:
    from .runner import run_pipeline

    run = run_pipeline(args.params, outputs=args.outputs, run_id=args.run_id, overwrite=args.overwrite,
                       resume=args.resume)
    print(RunLayout(run).report)
    return 0


def _cmd_status(args) -> int:
    from .runstate import status_table

    print(status_table(args.run))
    return 0


def _cmd_slurm(args) -> int:
    from .io import write_text
    from .runner import load_params, slurm_script

    load_params(args.params)  # fail now, not on the cluster
    script = slurm_script(args.params, variants=args.variants, gpus=args.gpus, time=args.time, mem=args.mem,
                          cpus=args.cpus, partition=args.partition, account=args.account, venv=args.venv)
    print(write_text(script, args.out, overwrite=args.overwrite))
    return 0


def _cmd_export(args) -> int:
    from .io import check_output_folder, check_output_path, write_json
    from .model import export_onnx, load_model, save_legacy_weights
    from .weights import read_metadata, weights_path

    out = check_output_folder(args.out, what="--out")
    source = weights_path(args.model)
    meta = read_metadata(source)
    target = out / f"{source.stem}.{args.format}"
    from .model_card import card_paths, export_card, write_card

    for path in (target, target.with_suffix(".json"), *card_paths(target)):
        check_output_path(path, overwrite=args.overwrite, suffixes=None, inputs=(source, source.with_suffix(".json")))
    size = int(meta["input_size"])
    model, meta = load_model(source, input_shape=(size, size, 1))
    keep = {k: v for k, v in meta.items() if k != "source"}
    if args.format == "hdf5":
        save_legacy_weights(model, target, metadata=keep)
    else:
        export_onnx(model, target, input_size=size)
        write_json(keep, target.with_suffix(".json"))
    write_card(target, export_card(args.model, target))  # the card travels with the exported weights
    print(target)
    return 0


_COMMANDS = {
    "fetch": _cmd_fetch,
    "segment": _cmd_segment,
    "evaluate": _cmd_evaluate,
    "train": _cmd_train,
    "run": _cmd_run,
    "slurm": _cmd_slurm,
    "export": _cmd_export,
    "model-card": _cmd_model_card,
    "status": _cmd_status,
}


def _one_line_warnings(command: str):
    """Warnings as ``pedgm <command>: warning: <message>`` lines (Python's default adds a source line).

    Returns the previous ``warnings.showwarning``, to be put back.
    """
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"pedgm {command}: warning: {message}", file=file or sys.stderr)

    previous, warnings.showwarning = warnings.showwarning, show
    return previous


def main(argv: list[str] | None = None) -> int:
    """Run ``pedgm``; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = get_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    import logging
    import warnings

    previous = _one_line_warnings(args.command)
    # nibabel's own log lines (header repairs) never reach stderr beside the one-line error: the input
    # layer (pedgm_kit.io) checks those fields itself; this also covers any nibabel call outside it
    nibabel_log = logging.getLogger("nibabel.global")
    was_disabled, nibabel_log.disabled = nibabel_log.disabled, True
    stdout, sys.stdout = sys.stdout, _PipeSafe(sys.stdout)
    try:
        status = _run(args)
        sys.stdout.flush()
        return status
    finally:
        sys.stdout = stdout
        nibabel_log.disabled = was_disabled
        warnings.showwarning = previous


class _PipeSafe:
    """stdout that treats a closed pipe (``pedgm evaluate ... | head -3``) as the reader having seen enough.

    Command-line tools exit quietly then; here the command also runs to its end, so outputs written
    after the printing (``--json``, summaries) are still written. Later output goes to /dev/null.
    """

    def __init__(self, stream):
        self._stream = stream
        self.closed_pipe = False

    def _guard(self, method: str, *args):
        if self.closed_pipe:
            return len(args[0]) if args else None
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:
            self.closed_pipe = True
            try:  # the interpreter's last flush at exit must not complain either
                import os

                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
                pass
            return len(args[0]) if args else None

    def write(self, text: str):
        return self._guard("write", text)

    def flush(self):
        return self._guard("flush")

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _run(args) -> int:
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.verbose:
            traceback.print_exc()
        after = {"train": "; rerun the same command to resume from the last completed epoch",
                 "run": "; finished steps are kept (pedgm run --resume continues)"}.get(
                     args.command, "; no output was written")
        print(f"pedgm {args.command}: interrupted{after}", file=sys.stderr)
        return 130
    except PedgmError as err:
        if args.verbose:
            traceback.print_exc()
        status = getattr(err, "exit_status", 2)  # 143: stopped by SIGTERM (pedgm_kit.runstate.Preempted)
        print(f"pedgm {args.command}: {'error: ' if status == 2 else ''}{err}", file=sys.stderr)
        return status
    except OSError as err:  # permissions, full disk, a folder where a file should be ...
        if args.verbose:
            traceback.print_exc()
        where = f": '{err.filename}'" if err.filename else ""
        print(f"pedgm {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        if args.verbose:
            traceback.print_exc()
        print(f"pedgm {args.command}: error: out of memory", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
