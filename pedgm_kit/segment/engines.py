"""Inference engines: the same weights run by Keras (optionally XLA-compiled) or by ONNX Runtime.

Every engine maps standardised windows ``(N, rows, cols)`` to sigmoid probabilities of the same
shape. Batches are always padded to the engine's batch size, so a compiled engine sees one input
shape per window size and never recompiles within a scan.

- ``keras``: ``model.predict_on_batch`` (any backend);
- ``xla``: the same Keras model compiled with ``jit_compile=True`` (TensorFlow: XLA; JAX compiles
  anyway), outputs equal to ``keras`` to float precision;
- ``onnx``: the weights exported once with tf2onnx (the runtime SCT ships), cached under the data
  cache by the sha256 of the weights file, run by ONNX Runtime;
- ``openvino``: the same export compiled by OpenVINO, in float32.

``auto`` picks what ``benchmarks/bench_segment.py`` measured fastest on this project's 2-core CPU
with masks identical to ``keras`` on every sample scan: ``openvino`` (then ``xla``) with the
TensorFlow backend, ``keras`` with the others (JAX compiles anyway).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._backend import keras
from ..exceptions import InputFileError, ParameterError
from ..io import check_choice
from ..schema import ENGINES

__all__ = ["ENGINES", "MAX_BATCH_SIZE", "Engine", "make_engine"]


#: Largest batch (windows per forward pass) an engine accepts. A compiled engine pads every batch to
#: this size, so an absurd value would allocate an absurd tensor; 512 windows of 200x200 are about
#: 80 MB of input and several GB of activations, more than any CPU run gains from.
MAX_BATCH_SIZE = 512


class Engine:
    """Runs a loaded Keras model on windows in batches of at most ``batch_size``."""

    name = "keras"
    pad_batches = False  # True: the last, smaller batch is padded (engines that compile per shape)

    def __init__(self, model, *, batch_size: int):
        self.model = model
        self.batch_size = int(batch_size)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Sigmoid output for windows of shape (N, rows, cols), float32, same shape."""
        windows = np.asarray(windows, dtype=np.float32)
        out = np.empty(windows.shape, dtype=np.float32)
        n, bs = len(windows), self.batch_size
        for start in range(0, n, bs):
            chunk = windows[start : start + bs]
            k = len(chunk)
            if k < bs and self.pad_batches:  # one input shape: no recompiling for the remainder
                chunk = np.concatenate([chunk, np.zeros((bs - k, *chunk.shape[1:]), np.float32)])
            out[start : start + k] = self._run(chunk[..., None])[:k, ..., 0]
        return out


class XlaEngine(Engine):
    """The Keras model's predict step compiled with XLA (``jit_compile=True``)."""

    name = "xla"
    pad_batches = True  # an XLA compilation costs seconds: one batch shape per window size

    def __init__(self, model, *, batch_size: int):
        super().__init__(model, batch_size=batch_size)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            self._fn = tf.function(lambda x: model(x, training=False), jit_compile=True, autograph=False,
                                   reduce_retracing=True)
        else:
            self._fn = None  # JAX compiles predict_on_batch anyway; torch has no XLA

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._fn is None:
            return super()._run(batch)
        return self._fn(batch).numpy()


class OnnxEngine(Engine):
    """ONNX Runtime on the same weights, exported once per weights file (cached by sha256)."""

    name = "onnx"

    def __init__(self, model, *, batch_size: int, weights: str | os.PathLike, input_size: int):
        super().__init__(model, batch_size=batch_size)
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise InputFileError(f"engine 'onnx' needs onnxruntime (pip install 'pedgm_kit[onnx]'): {err}") from None
        path = _cached_onnx(model, Path(weights), input_size)
        self.input_size = int(input_size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:3] != (self.input_size, self.input_size):  # the export is for the window size only
            return super()._run(batch)
        return self.session.run(None, {"input_1": batch})[0]


class OpenVinoEngine(Engine):
    """OpenVINO on the same ONNX export, compiled once per batch shape, computing in float32.

    float32 is asked for explicitly: on CPUs with bfloat16 units OpenVINO would otherwise compute in
    bfloat16 (about twice as fast here), which changed 31 mask voxels on the 17 sample scans.
    """

    name = "openvino"

    def __init__(self, model, *, batch_size: int, weights: str | os.PathLike, input_size: int):
        super().__init__(model, batch_size=batch_size)
        try:
            import openvino as ov
        except ImportError as err:
            raise InputFileError(f"engine 'openvino' needs openvino (pip install openvino): {err}") from None
        self.path = _cached_onnx(model, Path(weights), input_size)
        self.input_size = int(input_size)
        self._core = ov.Core()
        self._compiled: dict[tuple, object] = {}

    def _request(self, shape: tuple):
        if shape not in self._compiled:
            net = self._core.read_model(str(self.path))
            net.reshape(list(shape))
            compiled = self._core.compile_model(net, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                              "PERFORMANCE_HINT": "LATENCY"})
            self._compiled[shape] = compiled.create_infer_request()
        return self._compiled[shape]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:3] != (self.input_size, self.input_size):  # whole small slices: Keras runs them
            return Engine._run(self, batch)
        request = self._request(tuple(batch.shape))
        return next(iter(request.infer({0: batch}).values()))


def _cached_onnx(model, weights: Path, input_size: int) -> Path:
    from ..model import export_onnx
    from ..registry import cache_dir, sha256sum

    folder = cache_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha256sum(weights)[:16]}-{input_size}.onnx"
    if not path.is_file():
        export_onnx(model, path, input_size=input_size)
    return path


def _auto() -> str:
    """The fastest engine here with masks identical to Keras (see the module docstring)."""
    if keras.backend.backend() != "tensorflow":
        return "keras"
    try:
        import openvino  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return "xla"
    return "openvino"


def make_engine(name: str, model, *, batch_size: int, weights: str | os.PathLike, input_size: int) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`) for a loaded model."""
    check_choice(name, ENGINES, name="engine")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ParameterError(f"batch size (--batch-size) must be an integer from 1 to {MAX_BATCH_SIZE}; got {batch_size!r}")
    if name == "auto":
        name = _auto()
    if name == "xla":
        return XlaEngine(model, batch_size=batch_size)
    if name in ("onnx", "openvino"):
        if keras.backend.backend() != "tensorflow":
            raise ParameterError(f"engine {name!r} exports through tf2onnx and needs the TensorFlow backend")
        kind = OnnxEngine if name == "onnx" else OpenVinoEngine
        return kind(model, batch_size=batch_size, weights=weights, input_size=input_size)
    return Engine(model, batch_size=batch_size)
