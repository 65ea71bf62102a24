"""The deepseg_gm network (Perone et al. 2018) in Keras 3, and SCT's legacy HDF5 weights.

Architecture, as SCT's Keras 2.0.6 ``create_model(nfilters)``: two 3x3 convolutions, two
dilation-2 convolutions, then ASPP branches (a 3x3 + 1x1 "branch1x1", dilation 6, 12, 18, 24, each two
convolutions), a global-average-pool branch of the first block broadcast over the image, concatenation,
a 1x1 "amort" convolution with 64 filters and a sigmoid 1x1 "predictions" convolution. Every convolution
(ReLU) is followed by BatchNormalization (momentum 0.1) and Dropout 0.4. Written with ``keras.layers``
and ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends and on any input size.

Weights files are read as data (arrays through h5py), never by deserialising a model. Layer and weight
names follow the Keras 2 file layout: ``<layer>/<layer>/<weight>:0`` datasets, BatchNormalization layers
``batch_normalization_1..16`` in creation order. Metadata travels in a ``.json`` beside the weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ._backend import keras
from ._utils import atomic_path
from .exceptions import InputFileError, ParameterError, WeightsError
from .weights import DEFAULT_METADATA, as_text, read_metadata, weights_path

layers, ops = keras.layers, keras.ops

__all__ = [
    "DEFAULT_METADATA",
    "GlobalContext",
    "build_model",
    "dice_bce_loss",
    "dice_coefficient",
    "dice_loss",
    "export_onnx",
    "load_legacy_weights",
    "load_model",
    "read_metadata",
    "save_legacy_weights",
]

_DILATED_BRANCHES = ("rate6", "rate12", "rate18", "rate24")


@keras.saving.register_keras_serializable(package="pedgm_kit")
class GlobalContext(layers.Layer):
    """Global average over the spatial axes, broadcast back to every pixel.

    Equivalent to Keras 2's ``GlobalAveragePooling2D -> RepeatVector(H*W) -> Reshape((H, W, C))`` for
    any input size.
    """

    def call(self, inputs):
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        return ops.zeros_like(inputs) + pooled

    def compute_output_shape(self, input_shape):
        return input_shape


def build_model(
    filters: int = 32,
    *,
    input_shape: tuple = (None, None, 1),
    dropout: float = 0.4,
    bn_momentum: float = 0.1,
) -> keras.Model:
    """Build the deepseg_gm network.

    Parameters
    ----------
    filters : int, default 32
        Filters per convolution: 32 for SCT's challenge model, 64 for its large model.
    input_shape : tuple, default (None, None, 1)
        (height, width, channels); ``None`` sizes accept any input size.
    dropout : float, default 0.4
        Dropout rate after every block.
    bn_momentum : float, default 0.1
        BatchNormalization momentum (Keras convention: weight of the running average).

    Returns
    -------
    keras.Model
        Uncompiled model, input ``input_1``, output ``predictions`` (sigmoid).

    Examples
    --------
    >>> model = build_model(32, input_shape=(200, 200, 1))
    >>> model.output_shape
    (None, 200, 200, 1)
    """
    if not isinstance(filters, (int, np.integer)) or filters < 1:
        raise ParameterError(f"filters must be a positive integer, got {filters!r}")
    counter = {"conv": 0, "bn": 0, "drop": 0}

    def block(x, name=None, kernel=3, rate=1, width=filters):
        if name is None:
            counter["conv"] += 1
            name = f"conv2d_{counter['conv']}"
        x = layers.Conv2D(width, kernel, dilation_rate=rate, activation="relu", padding="same", name=name)(x)
        return norm_drop(x)

    def norm_drop(x):
        counter["bn"] += 1
        counter["drop"] += 1
        x = layers.BatchNormalization(momentum=bn_momentum, epsilon=1e-3, name=f"batch_normalization_{counter['bn']}")(x)
        return layers.Dropout(dropout, name=f"dropout_{counter['drop']}")(x)

    inputs = keras.Input(shape=input_shape, name="input_1")
    conv1 = block(block(inputs))
    conv3 = block(block(conv1, "rate2_1", rate=2), "rate2_2", rate=2)
    branch1x1 = block(block(conv3, "branch1x1_1"), "branch1x1_2", kernel=1)
    dilated = {}
    for branch in _DILATED_BRANCHES:
        rate = int(branch[4:])
        dilated[branch] = block(block(conv3, f"{branch}_1", rate=rate), f"{branch}_2", rate=rate)
    global_pool = GlobalContext(name="global_context")(conv1)
    concat = layers.Concatenate(axis=-1, name="concatenate_1")(
        [branch1x1, dilated["rate6"], dilated["rate12"], dilated["rate18"], global_pool, dilated["rate24"]]
    )
    concat = norm_drop(concat)
    amort = block(concat, "amort", kernel=1, width=64)
    # float32 output even under a mixed-precision policy (a float16 sigmoid cannot reach 0.999 finely)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", padding="same", name="predictions", dtype="float32")(amort)
    return keras.Model(inputs=inputs, outputs=outputs, name=f"deepseg_gm_{filters}")


def dice_coefficient(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice over the whole batch, as SCT's training code (smoothing 1)."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


def dice_loss(y_true, y_pred):
    """Negative soft Dice, the original training loss."""
    return -dice_coefficient(y_true, y_pred)


def dice_bce_loss(y_true, y_pred):
    """Negative soft Dice plus binary cross-entropy (mean over pixels).

    Dice alone gives almost no gradient where a pretrained network's sigmoid is saturated on the
    wrong side (a new contrast); the cross-entropy term does.
    """
    bce = ops.mean(keras.losses.binary_crossentropy(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")))
    return -dice_coefficient(y_true, y_pred) + bce


# --------------------------------------------------------------------------------------------- weights


def _weights_by_layer(model: keras.Model) -> dict[str, dict[str, keras.Variable]]:
    found = {}
    for layer in model.layers:
        if layer.weights:
            found[layer.name] = {w.path.split("/")[-1]: w for w in layer.weights}
    return found


def load_legacy_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Load Keras-2 HDF5 weights by layer name, with explicit shape checks.

    Every weight in the file must land in exactly one model weight of the same layer name, weight
    name and shape, and every model weight must be filled; anything else is an error (no silent
    ``by_name`` skipping).

    Raises
    ------
    InputFileError
        Missing file.
    WeightsError
        Not a readable HDF5 weights file (truncated, corrupt), or weights that do not fit the model
        (e.g. another filter count).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' (weights)")
    targets = _weights_by_layer(model)
    assigned: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as h5:
            root = h5["model_weights"] if "model_weights" in h5 else h5
            layer_names = [as_text(n) for n in root.attrs.get("layer_names", list(root.keys()))]
            for lname in layer_names:
                group = root[lname]
                weight_names = [as_text(n) for n in group.attrs.get("weight_names", [])]
                if not weight_names:
                    continue
                if lname not in targets:
                    raise WeightsError(f"{path}: layer '{lname}' holds weights but the model has no such layer")
                for wname in weight_names:
                    short = wname.split("/")[-1].split(":")[0]
                    var = targets[lname].get(short)
                    if var is None:
                        raise WeightsError(f"{path}: weight '{wname}' has no counterpart in model layer '{lname}'")
                    array = np.asarray(group[wname])
                    if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
                        bad = int(np.count_nonzero(~np.isfinite(array))) if array.dtype.kind == "f" else array.size
                        raise WeightsError(f"{path}: weight '{wname}' holds {bad} NaN, infinite or non-numeric values")
                    if tuple(array.shape) != tuple(var.shape):
                        raise WeightsError(
                            f"{path}: weight '{wname}' has shape {array.shape} but the model expects "
                            f"{tuple(var.shape)} (wrong filter count for this model?)"
                        )
                    key = f"{lname}/{short}"
                    if key in assigned:
                        raise WeightsError(f"{path}: weight '{wname}' appears twice")
                    assigned[key] = array
    except (OSError, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(f"{path}: not a readable Keras HDF5 weights file (truncated or corrupt?): {reason}") from None
    missing = [f"{ln}/{wn}" for ln, ws in targets.items() for wn in ws if f"{ln}/{wn}" not in assigned]
    if missing:
        raise WeightsError(f"{path}: no weights for {len(missing)} model weights, e.g. {missing[:3]}")
    for key, array in assigned.items():
        lname, short = key.split("/")
        targets[lname][short].assign(array)


def save_legacy_weights(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    metadata: dict | None = None,
) -> Path:
    """Save weights in SCT's Keras-2 HDF5 layout, plus the ``.json`` metadata beside them.

    Written to temporary files and renamed into place. A round trip through
    :func:`load_legacy_weights` reproduces identical predictions.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_model`.
    path : path-like
        Output ``.hdf5`` path; the metadata goes to the same stem with ``.json``.
    metadata : dict, optional
        Keys to store (``filters`` is always taken from the model); SCT reads ``filters``,
        ``mean_train`` and ``std_train``.

    Returns
    -------
    pathlib.Path
        The weights path.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputFileError(f"Output folder does not exist: '{path.parent}' (for weights '{path}')")
    meta = dict(DEFAULT_METADATA)
    meta.update(metadata or {})
    meta["filters"] = int(model.get_layer("conv2d_1").filters)
    layer_names = [layer.name for layer in model.layers]
    with atomic_path(path) as tmp_h5, atomic_path(path.with_suffix(".json")) as tmp_json:
        with h5py.File(tmp_h5, "w") as h5:
            h5.attrs["layer_names"] = np.array([n.encode() for n in layer_names])
            h5.attrs["backend"] = keras.backend.backend().encode()
            h5.attrs["keras_version"] = b"2.0.6"  # the layout written, which SCT's loaders expect
            h5.attrs["pedgm_keras_version"] = keras.__version__.encode()
            for layer in model.layers:
                group = h5.create_group(layer.name)
                names = []
                for weight in layer.weights:
                    short = weight.path.split("/")[-1]
                    wname = f"{layer.name}/{short}:0"
                    names.append(wname.encode())
                    group.create_dataset(wname, data=keras.ops.convert_to_numpy(weight.value))
                group.attrs["weight_names"] = np.array(names) if names else np.array([], dtype="float64")
        with open(tmp_json, "w") as fh:
            json.dump(meta, fh, indent=1)
    return path


def load_model(
    model: str | os.PathLike = "challenge",
    *,
    input_shape: tuple = (None, None, 1),
) -> tuple[keras.Model, dict]:
    """Build the network and load SCT-layout weights.

    Parameters
    ----------
    model : {"challenge", "large"} or path-like, default "challenge"
        SCT's pretrained weights by name (fetched through :mod:`pedgm_kit.registry`), or a path to
        a ``.hdf5`` weights file with its ``.json`` metadata beside it (:func:`pedgm_kit.weights.weights_path`).
    input_shape : tuple, default (None, None, 1)
        Model input shape.

    Returns
    -------
    (keras.Model, dict)
        The model with weights loaded, and its metadata (filters, mean_train, std_train,
        input_size, spacing_mm, normalisation, threshold, source).
    """
    path = weights_path(model)
    meta = read_metadata(path)
    net = build_model(int(meta["filters"]), input_shape=input_shape)
    load_legacy_weights(net, path)
    meta["source"] = str(path)
    return net, meta


def export_onnx(model: keras.Model, path: str | os.PathLike, *, input_size: int | None = None, opset: int = 13) -> Path:
    """Export to ONNX in the layout SCT's sct_deepseg_gm loads: input ``input_1`` (N, 200, 200, 1)
    float32, output ``predictions``.

    Needs the TensorFlow backend and the ``onnx`` extra (tf2onnx, onnxruntime). Written to a
    temporary file and renamed into place.
    """
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise InputFileError(f"ONNX export needs tensorflow and tf2onnx (pip install 'pedgm_kit[onnx]'): {err}") from None
    path = Path(path)
    if not path.parent.is_dir():
        raise InputFileError(f"Output folder does not exist: '{path.parent}' (for ONNX model '{path}')")
    input_size = int(DEFAULT_METADATA["input_size"] if input_size is None else input_size)
    spec = (tf.TensorSpec((None, input_size, input_size, 1), tf.float32, name="input_1"),)

    @tf.function(input_signature=spec)
    def forward(input_1):
        return {"predictions": model(input_1, training=False)}

    with atomic_path(path) as tmp:
        tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset, output_path=tmp)
    return path
