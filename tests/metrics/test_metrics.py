"""Tests of pedgm_kit.metrics: hand-computed fixtures, independent implementations, empty masks,
error paths and the batched per-slice path."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.spatial.distance import cdist, directed_hausdorff

from pedgm_kit.exceptions import DimensionError, GridMismatchError, ImageContentError
from pedgm_kit.metrics import (
    METRICS,
    _skeletonize_stack,
    dice,
    per_slice_metrics,
    slice_metrics,
    volume_metrics,
)

NAN = float("nan")


# ------------------------------------------------------------------------------------------------
# helpers: an independent boundary definition and brute-force distances
# ------------------------------------------------------------------------------------------------


def square(shape, rows, cols):
    m = np.zeros(shape, dtype=bool)
    m[rows[0] : rows[1], cols[0] : cols[1]] = True
    return m


def disc(shape, center, radius):
    yy, xx = np.indices(shape)
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def blob(rng, shape, sigma=2.5, level=0.6):
    """A smooth random blob: thresholded Gaussian-filtered noise, largest part kept or not."""
    field = ndi.gaussian_filter(rng.random(shape), sigma)
    return field > np.quantile(field, level)


def brute_boundary(mask):
    """Mask voxels with a face neighbour outside the mask (outside the array counts as outside)."""
    padded = np.pad(mask, 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    outside = np.zeros_like(mask)
    for ax in range(mask.ndim):
        for step in (-1, 1):
            outside |= ~np.roll(padded, step, axis=ax)[inner]
    return mask & outside


def points_mm(mask, spacing):
    return np.argwhere(mask) * np.asarray(spacing, dtype=float)


def brute_surface(pred, truth, spacing):
    """(MSD, HSD) by all-pairs distances between boundary voxel centres."""
    a, b = points_mm(brute_boundary(pred), spacing), points_mm(brute_boundary(truth), spacing)
    d = cdist(a, b)
    pooled = np.concatenate((d.min(axis=1), d.min(axis=0)))
    return pooled.mean(), pooled.max()


def brute_skeleton_distances(pred, truth, spacing, skel_pred, skel_truth):
    """(SHD, SMD) by all-pairs distances from each skeleton to the other boundary."""
    bp, bt = points_mm(brute_boundary(pred), spacing), points_mm(brute_boundary(truth), spacing)
    sp, st = points_mm(skel_pred, spacing), points_mm(skel_truth, spacing)
    pooled = np.concatenate((cdist(sp, bt).min(axis=1), cdist(st, bp).min(axis=1)))
    return pooled.max(), np.median(pooled)


def assert_metrics(actual: dict, expected: dict):
    assert list(actual) == list(METRICS)
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[name]), f"{name}: expected NaN, got {actual[name]}"
        else:
            assert actual[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------------------------------
# hand-computed fixtures
# ------------------------------------------------------------------------------------------------


def test_metric_names_and_order():
    assert METRICS == ("DSC", "JI", "CC", "TPR", "TNR", "PPV", "MSD", "HSD", "SHD", "SMD")


def test_overlapping_squares_by_hand():
    truth = square((30, 30), (5, 15), (5, 15))  # 100 px
    pred = square((30, 30), (8, 18), (8, 18))  # 100 px, overlap 7 x 7 = 49
    tp, fp, fn = 49, 51, 51
    tn = 900 - tp - fp - fn  # 749
    out = slice_metrics(pred, truth)
    assert_metrics(
        out,
        {
            "DSC": 2 * tp / (2 * tp + fp + fn),  # 0.49
            "JI": tp / (tp + fp + fn),  # 49 / 151
            "CC": (1 - (fp + fn) / tp) * 100,  # -108.16...
            "TPR": tp / (tp + fn),
            "TNR": tn / (tn + fp),
            "PPV": tp / (tp + fp),
        },
    )
    assert out["DSC"] == pytest.approx(0.49)
    assert dice(pred, truth) == pytest.approx(0.49)


def test_cc_is_consistent_with_jaccard():
    rng = np.random.default_rng(0)
    pred, truth = blob(rng, (40, 40)), blob(rng, (40, 40))
    out = slice_metrics(pred, truth)
    assert out["CC"] == pytest.approx(100 * (2 - 1 / out["JI"]))
    assert out["DSC"] == pytest.approx(2 * out["JI"] / (1 + out["JI"]))


@pytest.mark.parametrize("shift", [1, 3, 5])
def test_shifted_square_hausdorff(shift):
    truth = square((40, 40), (10, 22), (10, 22))
    pred = np.roll(truth, shift, axis=1)
    out = slice_metrics(pred, truth, spacing_mm=(1.0, 1.0))
    assert out["HSD"] == pytest.approx(shift)
    assert 0 < out["MSD"] < shift


@pytest.mark.parametrize(("axis", "expected_hsd"), [(0, 3 * 0.5), (1, 3 * 2.0)])
def test_anisotropic_spacing_scales_the_shift(axis, expected_hsd):
    truth = square((40, 40), (10, 22), (10, 22))
    pred = np.roll(truth, 3, axis=axis)
    out = slice_metrics(pred, truth, spacing_mm=(0.5, 2.0))
    assert out["HSD"] == pytest.approx(expected_hsd)
    assert out["MSD"] == pytest.approx(brute_surface(pred, truth, (0.5, 2.0))[0])


def test_identical_masks():
    # 7-row bar: the skeleton is the middle row; its nearest boundary pixels are the top and bottom
    # rows, 3 rows away (3 * 0.5 mm), the end columns being >= 3 columns (6 mm) away.
    bar = square((15, 30), (3, 10), (2, 22))
    out = slice_metrics(bar, bar.copy(), spacing_mm=(0.5, 2.0))
    assert_metrics(
        out,
        {"DSC": 1, "JI": 1, "CC": 100, "TPR": 1, "TNR": 1, "PPV": 1, "MSD": 0, "HSD": 0, "SHD": 1.5, "SMD": 1.5},
    )


def test_thin_structures_have_zero_skeleton_distance_to_themselves():
    line = square((10, 30), (4, 5), (3, 25))  # one pixel wide: skeleton == boundary == mask
    out = slice_metrics(line, line)
    assert out["SHD"] == 0 and out["SMD"] == 0


def test_concentric_discs():
    truth = disc((41, 41), (20, 20), 12)
    pred = disc((41, 41), (20, 20), 9)
    n_t, n_p = truth.sum(), pred.sum()
    out = slice_metrics(pred, truth, spacing_mm=(0.5, 0.5))
    assert out["DSC"] == pytest.approx(2 * n_p / (n_p + n_t))
    assert out["TPR"] == pytest.approx(n_p / n_t)
    assert out["PPV"] == 1.0
    assert out["JI"] == pytest.approx(n_p / n_t)
    # radii differ by 3 px = 1.5 mm; digital circles deviate by less than a pixel
    assert 1.5 - 0.5 <= out["MSD"] <= out["HSD"] <= 1.5 + 0.5
    msd, hsd = brute_surface(pred, truth, (0.5, 0.5))
    assert out["MSD"] == pytest.approx(msd) and out["HSD"] == pytest.approx(hsd)


def test_disjoint_masks():
    truth = square((30, 30), (2, 8), (2, 8))
    pred = square((30, 30), (20, 26), (2, 8))
    out = slice_metrics(pred, truth)
    assert_metrics(out, {"DSC": 0, "JI": 0, "CC": NAN, "TPR": 0, "PPV": 0, "HSD": 18})


# ------------------------------------------------------------------------------------------------
# agreement with independent implementations
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 2.0), (0.3, 0.45)])
@pytest.mark.parametrize("case", range(4))
def test_surface_distances_match_brute_force(spacing, case):
    rng = np.random.default_rng(0)
    pairs = [(blob(rng, (36, 44)), blob(rng, (36, 44))) for _ in range(case + 1)]
    pred, truth = pairs[case]
    out = slice_metrics(pred, truth, spacing_mm=spacing)

    a, b = points_mm(brute_boundary(pred), spacing), points_mm(brute_boundary(truth), spacing)
    hsd = max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])
    msd, _ = brute_surface(pred, truth, spacing)
    assert out["HSD"] == pytest.approx(hsd, rel=1e-9)
    assert out["MSD"] == pytest.approx(msd, rel=1e-9)

    sp, st = _skeletonize_stack(np.stack([pred, truth]))
    shd, smd = brute_skeleton_distances(pred, truth, spacing, sp, st)
    assert out["SHD"] == pytest.approx(shd, rel=1e-9)
    assert out["SMD"] == pytest.approx(smd, rel=1e-9)


def test_volume_distances_match_brute_force():
    rng = np.random.default_rng(0)
    spacing = (0.5, 0.7, 2.0)
    pred, truth = blob(rng, (20, 18, 6), sigma=2.0), blob(rng, (20, 18, 6), sigma=2.0)
    out = volume_metrics(pred, truth, spacing_mm=spacing)
    msd, hsd = brute_surface(pred, truth, spacing)
    assert out["MSD"] == pytest.approx(msd, rel=1e-9)
    assert out["HSD"] == pytest.approx(hsd, rel=1e-9)
    # skeletons are slice-wise (axis 2) 2D skeletons
    skel = lambda m: np.moveaxis(_skeletonize_stack(np.moveaxis(m, 2, 0)), 0, 2)  # noqa: E731
    shd, smd = brute_skeleton_distances(pred, truth, spacing, skel(pred), skel(truth))
    assert out["SHD"] == pytest.approx(shd, rel=1e-9)
    assert out["SMD"] == pytest.approx(smd, rel=1e-9)
    tp = np.sum(pred & truth)
    assert out["DSC"] == pytest.approx(2 * tp / (pred.sum() + truth.sum()))
    assert out["DSC"] == pytest.approx(dice(pred, truth))


@pytest.mark.parametrize(("z_spacing", "expected_shd"), [(5.0, 1.5), (1.0, 1.0)])
def test_volume_skeleton_distance_uses_3d_surface(z_spacing, expected_shd):
    # three identical 7-row bars stacked along axis 2; the top and bottom slices are entirely
    # surface, so the middle slice's skeleton is min(1.5 mm in-plane, z spacing) from the surface.
    vol = np.repeat(square((15, 30), (3, 10), (2, 22))[:, :, None], 3, axis=2)
    out = volume_metrics(vol, vol, spacing_mm=(0.5, 2.0, z_spacing))
    assert out["SHD"] == pytest.approx(expected_shd)
    assert out["HSD"] == 0 and out["MSD"] == 0


def test_volume_metrics_axis_selects_skeleton_planes():
    rng = np.random.default_rng(0)
    pred, truth = blob(rng, (12, 14, 16)), blob(rng, (12, 14, 16))
    spacing = (0.6, 0.8, 1.1)
    ref = volume_metrics(pred, truth, spacing_mm=spacing, axis=2)
    moved = volume_metrics(
        np.moveaxis(pred, 2, 0), np.moveaxis(truth, 2, 0), spacing_mm=(1.1, 0.6, 0.8), axis=0
    )
    for name in METRICS:
        assert moved[name] == pytest.approx(ref[name])
    assert volume_metrics(pred, truth, spacing_mm=spacing, axis=-1) == ref


# ------------------------------------------------------------------------------------------------
# skeletonisation
# ------------------------------------------------------------------------------------------------


def test_skeleton_properties_on_random_blobs():
    rng = np.random.default_rng(0)
    masks = np.stack([blob(rng, (50, 50), sigma=3.0, level=0.5) for _ in range(6)])
    skel = _skeletonize_stack(masks)
    eight = np.ones((3, 3), bool)
    for m, s in zip(masks, skel):
        assert not (s & ~m).any()  # inside the mask
        assert ndi.label(s, eight)[1] == ndi.label(m, eight)[1]  # same 8-components
        holes = lambda x: ndi.label(~np.pad(x, 1))[1]  # noqa: E731  (4-connected background parts)
        assert holes(s) == holes(m)  # same holes
        # one pixel wide: no fully set 2 x 2 block
        assert not (s[:-1, :-1] & s[1:, :-1] & s[:-1, 1:] & s[1:, 1:]).any()


def test_skeleton_small_shapes():
    dot = np.zeros((1, 7, 7), bool)
    dot[0, 3, 3] = True
    assert (_skeletonize_stack(dot) == dot).all()
    line = np.zeros((1, 9, 9), bool)
    line[0, 2:7, 4] = True
    assert (_skeletonize_stack(line) == line).all()
    d = disc((31, 31), (15, 15), 12)[None]
    s = _skeletonize_stack(d)[0]
    assert 1 <= s.sum() <= 5 and np.abs(np.argwhere(s) - 15).max() <= 2


def test_skeleton_does_not_leak_between_slices():
    a = np.zeros((3, 10, 10), bool)
    a[1] = True  # full slice between two empty slices: touches the array border everywhere
    s = _skeletonize_stack(a)
    assert not s[0].any() and not s[2].any() and s[1].any()


# ------------------------------------------------------------------------------------------------
# empty masks: documented rules, no warnings
# ------------------------------------------------------------------------------------------------

_UNDEFINED_DISTANCES = {"MSD": NAN, "HSD": NAN, "SHD": NAN, "SMD": NAN}
_EMPTY_RULES = {
    "both": {"DSC": 1, "JI": 1, "CC": 100, "TPR": 1, "TNR": 1, "PPV": 1, **_UNDEFINED_DISTANCES},
    "truth": {"DSC": 0, "JI": 0, "CC": NAN, "TPR": NAN, "PPV": 0, **_UNDEFINED_DISTANCES},
    "pred": {"DSC": 0, "JI": 0, "CC": NAN, "TPR": 0, "TNR": 1, "PPV": NAN, **_UNDEFINED_DISTANCES},
}


def _empty_pair(which, shape):
    blobby = np.zeros(shape, bool)
    blobby[(slice(2, 6),) * len(shape)] = True
    empty = np.zeros(shape, bool)
    return {"both": (empty, empty), "truth": (blobby, empty), "pred": (empty, blobby)}[which]


@pytest.mark.parametrize("which", ["both", "truth", "pred"])
def test_empty_slice_rules(which, no_warnings):
    pred, truth = _empty_pair(which, (10, 10))
    out = slice_metrics(pred, truth)
    assert_metrics(out, _EMPTY_RULES[which])
    if which == "truth":
        assert out["TNR"] == pytest.approx((100 - 16) / 100)
    assert dice(pred, truth) == _EMPTY_RULES[which]["DSC"]


@pytest.mark.parametrize("which", ["both", "truth", "pred"])
def test_empty_volume_rules(which, no_warnings):
    pred, truth = _empty_pair(which, (8, 8, 8))
    out = volume_metrics(pred, truth, spacing_mm=(0.5, 0.5, 5.0))
    assert_metrics(out, _EMPTY_RULES[which])


def test_empty_slices_in_a_stack(no_warnings):
    # slices along axis 2: both empty, truth empty, pred empty, both set
    pred = np.zeros((10, 10, 4), bool)
    truth = np.zeros((10, 10, 4), bool)
    pred[2:6, 2:6, 1] = pred[2:6, 2:6, 3] = True
    truth[2:6, 2:6, 2] = truth[3:7, 2:6, 3] = True
    frame = per_slice_metrics(pred, truth)
    for k, which in enumerate(["both", "truth", "pred"]):
        assert_metrics(frame.iloc[k][list(METRICS)].to_dict(), _EMPTY_RULES[which])
    assert frame.loc[3, list(METRICS)].notna().all()


def test_tnr_when_truth_covers_everything(no_warnings):
    full = np.ones((6, 6), bool)
    assert slice_metrics(full, full)["TNR"] == 1.0
    partial = full.copy()
    partial[0, 0] = False
    assert math.isnan(slice_metrics(partial, full)["TNR"])


# ------------------------------------------------------------------------------------------------
# per-slice batch == slice by slice
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_per_slice_matches_slice_metrics(axis):
    rng = np.random.default_rng(0)
    shape = (24, 28, 7)
    truth = blob(rng, shape, sigma=2.0)
    pred = blob(rng, shape, sigma=2.0) | np.roll(truth, 1, axis=0)
    truth[:, :, 3] = False  # an empty truth slice (axis 2) / empty column parts otherwise
    spacing = (0.5, 0.6, 2.5)
    frame = per_slice_metrics(pred, truth, spacing_mm=spacing, axis=axis)
    ax = axis % 3
    in_plane = tuple(s for k, s in enumerate(spacing) if k != ax)
    assert list(frame.columns) == ["slice", *METRICS]
    assert len(frame) == shape[ax]
    assert frame["slice"].tolist() == list(range(shape[ax]))
    for k in range(shape[ax]):
        expected = slice_metrics(np.take(pred, k, axis=ax), np.take(truth, k, axis=ax), spacing_mm=in_plane)
        row = frame.iloc[k]
        for name in METRICS:
            if math.isnan(expected[name]):
                assert math.isnan(row[name])
            else:
                assert row[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), (k, name)


def test_per_slice_returns_float_columns():
    vol = np.zeros((8, 8, 3), np.uint8)
    vol[2:5, 2:5, :2] = 1
    frame = per_slice_metrics(vol, vol)
    assert isinstance(frame, pd.DataFrame)
    assert all(frame[name].dtype == np.float64 for name in METRICS)


# ------------------------------------------------------------------------------------------------
# inputs: dtypes accepted, inputs untouched
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int64, np.float32, np.float64])
def test_accepted_dtypes_give_same_result(dtype):
    truth = square((20, 20), (4, 12), (4, 12))
    pred = square((20, 20), (6, 14), (5, 13))
    ref = slice_metrics(pred, truth, spacing_mm=(0.5, 0.5))
    assert slice_metrics(pred.astype(dtype), truth.astype(dtype), spacing_mm=(0.5, 0.5)) == ref


def test_inputs_are_not_modified():
    rng = np.random.default_rng(0)
    pred_b = blob(rng, (16, 16, 4))
    truth_i = blob(rng, (16, 16, 4)).astype(np.int16)
    pred_copy, truth_copy = pred_b.copy(), truth_i.copy()
    per_slice_metrics(pred_b, truth_i)
    volume_metrics(pred_b, truth_i)
    slice_metrics(pred_b[:, :, 0], truth_i[:, :, 0])
    dice(pred_b, truth_i)
    assert (pred_b == pred_copy).all() and pred_b.dtype == bool
    assert (truth_i == truth_copy).all() and truth_i.dtype == np.int16


def test_accepts_lists_and_read_only_arrays():
    a = np.zeros((6, 6), bool)
    a[1:4, 1:4] = True
    a.flags.writeable = False
    assert slice_metrics(a, a.tolist(), spacing_mm=np.array([1.0, 2.0]))["DSC"] == 1.0


def test_dice_any_dimension():
    assert dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(2 / 3)
    assert dice(np.ones((2, 3, 4, 5)), np.ones((2, 3, 4, 5))) == 1.0
    assert isinstance(dice(np.ones(3), np.ones(3)), float)


# ------------------------------------------------------------------------------------------------
# error paths
# ------------------------------------------------------------------------------------------------


def test_shape_mismatch():
    with pytest.raises(GridMismatchError, match=r"pred shape \(10, 12\) differs from truth shape \(10, 10\)"):
        slice_metrics(np.zeros((10, 12)), np.zeros((10, 10)))
    with pytest.raises(GridMismatchError, match=r"\(4, 4, 3\).*\(4, 4, 2\)"):
        per_slice_metrics(np.zeros((4, 4, 3)), np.zeros((4, 4, 2)))
    with pytest.raises(GridMismatchError, match=r"\(4, 4, 3\).*\(4, 5, 3\)"):
        volume_metrics(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(GridMismatchError):
        dice(np.zeros(3), np.zeros(4))
    with pytest.raises(GridMismatchError):  # shapes are checked before values
        dice(np.full(3, 7), np.zeros(4))


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (np.array([[0, 1], [2, 1]]), r"truth: mask must hold only 0 and 1, but 1 voxel\(s\) hold other values \(2\)"),
        (np.array([[0.0, 0.5], [1.0, -1.0]]), r"truth: .*2 voxel\(s\) hold other values \(-1, 0.5\)"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), r"truth: .*1 voxel\(s\) hold other values \(nan\)"),
        (np.arange(4).reshape(2, 2) * 10, r"truth: .*3 voxel\(s\) hold other values \(10, 20, 30\)"),
        (np.array([["a", "b"], ["c", "d"]]), r"truth: mask has dtype <U1; expected 0/1 numbers or bool"),
    ],
)
def test_non_binary_values(bad, pattern):
    with pytest.raises(ImageContentError, match=pattern):
        slice_metrics(np.zeros((2, 2)), bad)


def test_non_binary_lists_many_values_briefly():
    bad = np.arange(100, dtype=float).reshape(10, 10)
    with pytest.raises(ImageContentError, match=r"pred: .*98 voxel\(s\) hold other values \(2, 3, 4, 5, 6, \.\.\.\)$"):
        dice(bad, np.zeros((10, 10)))


@pytest.mark.parametrize(
    ("func", "arr", "pattern"),
    [
        (slice_metrics, np.zeros((4, 4, 4)), r"pred: expected a 2D mask, got 3D data of shape \(4, 4, 4\)"),
        (slice_metrics, np.zeros(4), r"pred: expected a 2D mask, got 1D"),
        (volume_metrics, np.zeros((4, 4)), r"pred: expected a 3D mask, got 2D data of shape \(4, 4\)"),
        (per_slice_metrics, np.zeros((1, 4, 4, 4)), r"pred: expected a 3D mask, got 4D"),
        (per_slice_metrics, np.zeros((4, 0, 4)), r"pred: mask has no voxels \(shape \(4, 0, 4\)\)"),
        (dice, np.zeros(()), r"pred: mask has no voxels \(shape \(\)\)"),
    ],
)
def test_wrong_dimensions(func, arr, pattern):
    with pytest.raises(DimensionError, match=pattern):
        func(arr, arr)


def test_wrong_dimensions_names_truth():
    with pytest.raises(DimensionError, match=r"^truth: expected a 2D mask"):
        slice_metrics(np.zeros((3, 3)), np.zeros((3, 3, 1)))


@pytest.mark.parametrize(
    ("func", "ndim", "spacing"),
    [
        (slice_metrics, 2, (1.0, 1.0, 1.0)),
        (slice_metrics, 2, (1.0,)),
        (slice_metrics, 2, (0.5, 0.0)),
        (slice_metrics, 2, (0.5, -1.0)),
        (slice_metrics, 2, (np.inf, 1.0)),
        (slice_metrics, 2, (np.nan, 1.0)),
        (slice_metrics, 2, ("a", 1.0)),
        (slice_metrics, 2, "11"),
        (slice_metrics, 2, 1.0),
        (slice_metrics, 2, None),
        (volume_metrics, 3, (0.5, 0.5)),
        (per_slice_metrics, 3, (0.5, 0.5, -5.0)),
        (per_slice_metrics, 3, [[0.5, 0.5, 5.0]]),
    ],
)
def test_bad_spacing(func, ndim, spacing):
    masks = np.zeros((3,) * ndim, bool)
    expected = rf"spacing_mm must be {ndim} positive finite voxel sizes in mm.*got {_re_repr(spacing)}$"
    with pytest.raises(ValueError, match=expected):
        func(masks, masks, spacing_mm=spacing)


def _re_repr(value):
    import re

    return re.escape(repr(value))


@pytest.mark.parametrize("func", [per_slice_metrics, volume_metrics])
@pytest.mark.parametrize("axis", [3, -4, 1.0, True, "2"])
def test_bad_axis(func, axis):
    masks = np.zeros((3, 3, 3), bool)
    with pytest.raises(ValueError, match=rf"axis must be an integer in \[-3, 2\]; got {_re_repr(axis)}"):
        func(masks, masks, axis=axis)


def test_keyword_only_arguments():
    masks = np.zeros((3, 3), bool)
    with pytest.raises(TypeError):
        slice_metrics(masks, masks, (1.0, 1.0))  # type: ignore[misc]
