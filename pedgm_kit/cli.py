"""The ``pedgm`` command line.

``get_parser()`` builds the parser; ``main(argv=None) -> int`` runs it, so tests call ``main([...])``.
User errors (:class:`~pedgm_kit.exceptions.PedgmError`, bad arguments) print one line to stderr and
exit with status 2; ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .exceptions import PedgmError

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

    seg = sub.add_parser("segment", help="segment gray matter in a NIfTI scan")
    seg.add_argument("image", help="input 3D NIfTI image (.nii or .nii.gz)")
    seg.add_argument("-o", "--output", help="output path (default: <input>_gmseg.nii.gz beside the input)")
    seg.add_argument("-m", "--model", default="challenge",
                     help="challenge (default), large, or a .hdf5 weights file with its .json beside it")
    seg.add_argument("--cord-mask", help="spinal cord mask on the image grid, to centre the windows on")
    seg.add_argument("-t", "--threshold", type=float, default=None,
                     help="probability threshold (default from the model metadata, 0.999); 0 writes probabilities")
    seg.add_argument("--tta", action="store_true", help="test-time augmentation (9 passes, seeded)")
    seg.add_argument("--seed", type=int, default=0, help="seed of the TTA offsets (default 0)")
    seg.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    seg.add_argument("--overwrite", action="store_true", help="replace an existing output file")
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
    from .segment import segment_file

    out = segment_file(
        args.image,
        args.output,
        overwrite=args.overwrite,
        model=args.model,
        cord_mask=args.cord_mask,
        threshold=args.threshold,
        tta=args.tta,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    print(out)
    return 0


_COMMANDS = {"fetch": _cmd_fetch, "segment": _cmd_segment}


def main(argv: list[str] | None = None) -> int:
    """Run ``pedgm``; returns the exit status (0 ok, 2 user error)."""
    parser = get_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return _COMMANDS[args.command](args)
    except PedgmError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"pedgm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
