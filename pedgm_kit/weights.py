"""Weights files and their metadata, without Keras: where a model's weights are, what they say.

SCT's deepseg_gm weights travel as a Keras-2 HDF5 file with a ``.json`` beside it (``filters``,
``mean_train``, ``std_train``). pedgm_kit adds the keys SCT leaves implicit (:data:`DEFAULT_METADATA`:
input size, model pixel size, normalisation, threshold), so code reads the geometry the weights were
trained for from the weights, never from module constants. Every value is checked on load: a
non-numeric, non-positive or out-of-range value is a one-line :class:`~pedgm_kit.exceptions.WeightsError`
naming the file and every bad key.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py

from .exceptions import InputFileError, WeightsError
from .registry import BUILTIN_MODELS

__all__ = ["DEFAULT_METADATA", "as_text", "read_metadata", "weights_path"]

#: Defaults for metadata keys SCT's own .json files do not carry.
DEFAULT_METADATA = {
    "input_size": 200,
    "spacing_mm": 0.25,
    "normalisation": "volume",
    "threshold": 0.999,
}


def weights_path(model: str | os.PathLike) -> Path:
    """The ``.hdf5`` file of a model: a built-in name (:data:`pedgm_kit.registry.BUILTIN_MODELS`,
    fetched through the registry) or a path that must exist."""
    if str(model) in BUILTIN_MODELS:
        from .registry import fetch_group

        return fetch_group(str(model))
    path = Path(model)
    if not path.is_file():
        names = "/".join(f"'{n}'" for n in BUILTIN_MODELS)
        raise InputFileError(f"No such file or no access: '{path}' (model weights; or use {names})")
    return path


def read_metadata(weights_path: str | os.PathLike) -> dict:
    """Read the ``.json`` beside a weights file, with :data:`DEFAULT_METADATA` for missing keys.

    When the ``.json`` is absent, ``filters`` is read from the first convolution's kernel in the
    weights file and the other keys take their defaults.
    """
    weights_path = Path(weights_path)
    meta = dict(DEFAULT_METADATA)
    json_path = weights_path.with_suffix(".json")
    if json_path.is_file():
        try:
            loaded = json.loads(json_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise WeightsError(f"{json_path}: metadata is not valid JSON ({err})") from None
        except RecursionError:
            raise WeightsError(f"{json_path}: metadata is not valid JSON (nested too deeply)") from None
        if not isinstance(loaded, dict):
            raise WeightsError(f"{json_path}: metadata must be a JSON object, got {type(loaded).__name__}")
        meta.update(loaded)
    file_filters = _filters_in_file(weights_path)
    _check_metadata(meta, json_path)
    if "filters" in meta and file_filters is not None and int(meta["filters"]) != file_filters:
        raise WeightsError(
            f"{weights_path}: metadata {json_path.name} says filters={meta['filters']} but the weights "
            f"have {file_filters} filters"
        )
    meta.setdefault("filters", file_filters)
    if meta.get("filters") is None:
        raise WeightsError(f"{weights_path}: cannot tell the filter count (no .json and no conv2d_1 kernel)")
    return meta


def _is_num(v) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _is_int(v) -> bool:
    return _is_num(v) and float(v).is_integer()


#: Metadata keys that must be numbers, and the range each must lie in.
_META_RULES = {
    "filters": ("a positive integer", lambda v: _is_int(v) and 1 <= v <= 4096),
    "input_size": ("an integer in 16-2048", lambda v: _is_int(v) and 16 <= v <= 2048),
    "threshold": ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    "spacing_mm": ("a number of mm in 0.01-5", lambda v: _is_num(v) and 0.01 <= v <= 5),
    "mean_train": ("a finite number", _is_num),
    "std_train": ("a positive number", lambda v: _is_num(v) and v > 0),
}


def _check_metadata(meta: dict, json_path: Path) -> None:
    """Typed, positive metadata, or one :class:`WeightsError` naming the file and every bad key."""
    bad = [f"{key}={_shown(meta[key])} (must be {rule})" for key, (rule, ok) in _META_RULES.items()
           if key in meta and not ok(meta[key])]  # null is a value too: never read as "absent"
    if "normalisation" in meta and meta["normalisation"] != "volume":
        bad.append(f"normalisation={_shown(meta['normalisation'])} (must be 'volume')")
    if bad:
        raise WeightsError(f"{json_path}: invalid metadata: {'; '.join(bad)}")


def _shown(value) -> str:
    """A metadata value as the .json spells it (``null``, not ``None``), shortened to one line."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _filters_in_file(path: Path) -> int | None:
    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            if "conv2d_1" not in root:
                return None
            group = root["conv2d_1"]
            for wname in group.attrs.get("weight_names", []):
                if as_text(wname).endswith("kernel:0"):
                    return int(group[as_text(wname)].shape[-1])
    except OSError as err:
        raise WeightsError(f"{path}: not a readable Keras HDF5 weights file (truncated or corrupt?): {err}") from None
    return None


def as_text(value) -> str:
    """An HDF5 name or attribute (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
