"""A run's cache of test-scan predictions: each (model, scan) is segmented once per run.

A ``pedgm run`` scores the test persons several times with the same model: every training run
scores its own model and the baseline (the initial weights) on the fold's test scans for its
``summary.json``, and notebook 05 scores them all again for the evaluation. The predictions are
identical (same weights, same scan, same settings; segmentation is deterministic), so
:func:`pedgm_kit.evaluate.evaluate_models` looks them up here first.

The cache is content-addressed: a prediction is stored under the sha256 of everything it depends
on -- the weights file and its ``.json`` metadata (threshold, normalisation), the scan's image
file, ``cord_scale``, ``tta`` and its seed, and the toolkit version -- so a changed file or setting
is a miss, never a stale hit. It is active only where ``$PEDGM_PREDICTION_CACHE`` names a folder
(``pedgm run`` sets it to ``<run>/prediction-cache/`` (:data:`pedgm_kit.layout.PREDICTION_CACHE_DIR`) for its notebooks); predictions with an
uncertainty map and masks from another tool's folder are not cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

__all__ = ["CACHE_ENV", "PredictionCache", "prediction_cache"]

CACHE_ENV = "PEDGM_PREDICTION_CACHE"
"""Environment variable naming the cache folder (inherited by the notebooks' kernels)."""


class PredictionCache:
    """Predictions stored by the sha256 of their inputs and settings (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._digests: dict[tuple, str] = {}

    @classmethod
    def from_env(cls) -> PredictionCache | None:
        """The cache named by ``$PEDGM_PREDICTION_CACHE``, or None."""
        folder = os.environ.get(CACHE_ENV, "").strip()
        return cls(folder) if folder else None

    def _digest(self, path: Path) -> str:
        from ..registry import sha256sum

        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in self._digests:
            self._digests[key] = sha256sum(path)
        return self._digests[key]

    def key(self, spec: str, image: str | os.PathLike, *, cord_scale, tta: bool, seed: int) -> str | None:
        """The cache key of segmenting ``image`` with the weights ``spec``; None if not cacheable."""
        from .. import __version__
        from ..exceptions import PedgmError
        from ..weights import weights_path

        try:
            weights = Path(weights_path(spec))
        except PedgmError:  # an unknown spec: the predictor reports it, the cache stays out
            return None
        if not weights.is_file() or not Path(image).is_file():
            return None
        meta = weights.with_suffix(".json")
        parts = {
            "weights": self._digest(weights),
            "metadata": self._digest(meta) if meta.is_file() else None,
            "image": self._digest(Path(image)),
            "cord_scale": repr(cord_scale), "tta": bool(tta), "seed": int(seed) if tta else None,
            "version": __version__,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.nii.gz"

    def fetch(self, key: str, target: Path) -> Path | None:
        """Copy the cached prediction to ``target`` (atomically); None on a miss."""
        source = self.path(key)
        if not source.is_file():
            return None
        _copy_atomic(source, target)
        return target

    def store(self, key: str, prediction: Path) -> None:
        """Keep a copy of ``prediction`` under ``key`` (atomically; a concurrent writer's copy is as good)."""
        _copy_atomic(prediction, self.path(key))


def _copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(source, part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


@contextlib.contextmanager
def prediction_cache(folder: str | os.PathLike):
    """Within the block, ``$PEDGM_PREDICTION_CACHE`` names ``folder`` (the previous value is restored)."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(Path(folder).resolve())
    try:
        yield Path(folder)
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous
