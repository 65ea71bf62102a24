"""Simulated domain shifts: a new contrast or smaller anatomy, applied to real scans and their masks.

The original pediatric scans are private. To show that fine-tuning can move the adult network to a
new domain at all, and how many annotated persons it takes, a shift is applied to every scan of a
real dataset before preprocessing (``shift`` parameter of notebook 01 / ``pedgm run``):

- ``invert``: intensity inversion (``max + min - x``): a new contrast, the field's most common
  request (SCT #1622, #3088); the masks are unchanged;
- ``scale:<s>`` (e.g. ``scale:0.7``): the anatomy ``s`` times its size in-plane about the cord's centre,
  voxel size unchanged (cords 30% smaller: a stand-in for small pediatric cords); masks follow;
- ``gamma:<g>`` (e.g. ``gamma:2.5``): a second contrast family, the intensities mapped through a power
  law (robust range 1st-99th percentile -> [0, 1], raised to ``g``, mapped back), which changes the GM/WM
  contrast ratio without inverting it, plus Gaussian noise of 5% of that range (seeded per scan, so a
  rerun makes the same copy); the masks are unchanged. The adapted recipe was tuned under ``invert``;
  ``gamma`` is where it is tested on a shift it was not tuned on.

Everything made this way is *simulated*: :func:`simulate_dataset` writes the shifted copy into a
folder named ``simulated-<shift>`` with a ``SIMULATED.txt`` note, and every table, figure and report
built from it says so. It is never pediatric data.
"""

from __future__ import annotations

import os
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .datasets import DatasetIndex, discover
from .exceptions import ParameterError
from .geometry import slice_axis
from .io import load_image, save_like, write_text

__all__ = ["Shift", "apply_shift", "parse_shift", "simulate_dataset"]

_AUX_FILES = ("participants.tsv", "participants.json", "dataset_description.json", "Controls.txt",
              "Controls_second.txt", "README.md", "LICENSE")


# kind -> (range of the factor, how outputs name it); "invert" has no factor
_FAMILIES = {"scale": ((0.3, 2.0), "simulated {f:g}x anatomy"),
             "gamma": ((0.2, 5.0), "simulated gamma {f:g} contrast with noise")}
GAMMA_NOISE = 0.05  # noise SD of the ``gamma`` family, as a fraction of the robust intensity range


@dataclass(frozen=True)
class Shift:
    """A simulated shift: ``kind`` "invert", "scale" or "gamma", with its ``factor``."""

    kind: str
    factor: float = 1.0

    @property
    def name(self) -> str:
        """``invert``, ``scale-0.7``, ``gamma-2.5``: used in folder names."""
        return self.kind if self.kind == "invert" else f"{self.kind}-{self.factor:g}"

    @property
    def label(self) -> str:
        """How outputs name it: ``simulated contrast inversion`` / ``simulated 0.7x anatomy`` / ..."""
        if self.kind == "invert":
            return "simulated contrast inversion"
        return _FAMILIES[self.kind][1].format(f=self.factor)


def parse_shift(text: str) -> Shift | None:
    """``""`` -> None; ``"invert"``; ``"scale:0.7"`` (factor in 0.3-2, not 1); ``"gamma:2.5"`` (0.2-5, not 1).

    Raises
    ------
    ParameterError
        Anything else.
    """
    text = str(text).strip()
    if not text:
        return None
    if text == "invert":
        return Shift("invert")
    match = re.fullmatch(r"(scale|gamma)\s*:\s*([0-9.]+)", text)
    if match:
        (low, high), _ = _FAMILIES[match.group(1)]
        try:
            factor = float(match.group(2))
        except ValueError:
            factor = float("nan")
        if low <= factor <= high and factor != 1.0:
            return Shift(match.group(1), factor)
    raise ParameterError(f"shift must be '', 'invert', 'scale:<factor>' (factor 0.3-2, not 1) or 'gamma:<g>' "
                         f"(g 0.2-5, not 1); got {text!r}")


def apply_shift(image: nib.Nifti1Image, masks: dict[str, nib.Nifti1Image], shift: Shift, *,
                centre_on: str | None = None, seed: int = 0) -> tuple[nib.Nifti1Image, dict[str, nib.Nifti1Image]]:
    """Shift one scan and its masks (on the scan's own grid).

    Parameters
    ----------
    image : nibabel.Nifti1Image
    masks : dict of str to nibabel.Nifti1Image
        Masks on the image's grid (GM, cord ...); binary.
    shift : Shift
    centre_on : str, optional
        Name of the mask whose centre of mass the scaling is centred on (default: the first mask,
        else the image centre), in-plane, per scan.
    seed : int, default 0
        Seed of the ``gamma`` family's noise.

    Returns
    -------
    (image, masks)
        New in-memory images on the same grid: float32 image, uint8 masks.
    """
    data = np.asanyarray(image.dataobj, dtype=np.float32)
    if shift.kind in ("invert", "gamma"):
        out = _invert(data) if shift.kind == "invert" else _gamma(data, shift.factor, seed)
        return _like(out, image, np.float32), {k: _like(np.asanyarray(m.dataobj) > 0.5, m, np.uint8) for k, m in masks.items()}
    axis = slice_axis(image.affine)
    ref = masks.get(centre_on) if centre_on else next(iter(masks.values()), None)
    ref_data = None if ref is None else np.asanyarray(ref.dataobj) > 0.5
    centre = (np.array(ndimage.center_of_mass(ref_data)) if ref_data is not None and ref_data.any()
              else (np.array(data.shape[:3]) - 1) / 2.0)
    matrix = np.ones(3)
    matrix[[k for k in range(3) if k != axis]] = 1.0 / shift.factor  # output voxel x samples c + (x - c) / s
    offset = centre - matrix * centre
    offset[axis] = 0.0

    def warp(volume, order, fill):
        return ndimage.affine_transform(volume, matrix, offset=offset, order=order, mode="nearest" if fill is None else "constant",
                                        cval=0.0 if fill is None else fill)

    out_image = warp(data, 1, None).astype(np.float32)
    out_masks = {k: _like(warp((np.asanyarray(m.dataobj) > 0.5).astype(np.float32), 1, 0.0) > 0.5, m, np.uint8)
                 for k, m in masks.items()}
    return _like(out_image, image, np.float32), out_masks


def _invert(data: np.ndarray) -> np.ndarray:
    return (float(data.max()) + float(data.min()) - data).astype(np.float32)


def _gamma(data: np.ndarray, gamma: float, seed: int) -> np.ndarray:
    low, high = np.percentile(data, [1, 99])
    span = max(float(high - low), 1e-6)
    unit = np.clip((data - low) / span, 0.0, 1.0) ** gamma
    noise = np.random.default_rng(seed).normal(0.0, GAMMA_NOISE, size=data.shape)
    return (low + span * (unit + noise)).astype(np.float32)


def _like(data: np.ndarray, like: nib.Nifti1Image, dtype) -> nib.Nifti1Image:
    from .io import to_image_like

    return to_image_like(np.asarray(data, dtype=dtype), like, dtype=dtype)


def simulate_dataset(index: DatasetIndex, out_root: str | os.PathLike, shift: Shift, *, overwrite: bool = False,
                     layout_options: dict | None = None) -> DatasetIndex:
    """A shifted copy of a whole dataset (labelled and unlabelled scans), in the same layout.

    Every image and mask keeps its path relative to the dataset root; auxiliary files
    (participants.tsv, Controls*.txt ...) are copied; ``SIMULATED.txt`` says what was done. The copy
    is then discovered like the original (same layout and options).

    Returns
    -------
    DatasetIndex
        The index of the simulated dataset.
    """
    if index.root is None:
        raise ParameterError("the index has no root folder to copy the layout from")
    root, out_root = Path(index.root), Path(out_root)
    if out_root.exists() and any(out_root.iterdir()) and not overwrite:
        raise ParameterError(f"'{out_root}' exists and is not empty; pass overwrite=True to rebuild it")
    out_root.mkdir(parents=True, exist_ok=True)
    for name in _AUX_FILES:
        if (root / name).is_file():
            shutil.copy(root / name, out_root / name)
    for scan in index.scans + index.unlabelled:
        img = load_image(scan.image)
        masks = {kind: nib.load(path) for kind, path in (("gm", scan.gm_mask), ("cord", scan.cord_mask)) if path}
        rel = Path(scan.image).relative_to(root)
        shifted, shifted_masks = apply_shift(img, masks, shift, centre_on="cord" if "cord" in masks else "gm",
                                             seed=zlib.crc32(rel.as_posix().encode()))
        targets = {"image": (scan.image, shifted, np.float32)}
        targets.update({k: (p, shifted_masks[k], np.uint8) for k, p in (("gm", scan.gm_mask), ("cord", scan.cord_mask)) if p})
        for src, out_img, dtype in targets.values():
            dest = out_root / Path(src).relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            save_like(np.asanyarray(out_img.dataobj), out_img, dest, overwrite=True, dtype=dtype)
    write_text(
        f"SIMULATED DATA: {shift.label} ({shift.name}) of every scan and mask of {root}.\n"
        "Made by pedgm_kit.shift.simulate_dataset for transfer-learning experiments; not real pediatric data.\n",
        out_root / "SIMULATED.txt",
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return discover(out_root, layout=index.layout or "bids", **(layout_options or {}))
