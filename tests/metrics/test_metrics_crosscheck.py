"""pedgm_kit.metrics against independent implementations: scikit-image and MONAI.

Where the definitions agree the numbers must agree (to float32 precision for MONAI, which computes in
float32); where they differ the difference is stated here and in ``pedgm_kit.metrics``:

- Skeleton: pedgm_kit uses ``skimage.morphology.thin`` (Guo & Hall 1989, A1). It replaced a
  hand-written implementation of the same algorithm (``tests/reference_thinning.py``) after this file
  showed them identical on every labelled sample slice, on the challenge model's predictions of the
  sample scans, on random masks and on all 65,536 4x4 masks. ``skeletonize`` (Zhang-Suen style) is a
  different algorithm and is not compared.
- Boundaries: MONAI's ``get_mask_edges`` is ``mask XOR erosion`` with face connectivity and the outside
  as background, exactly pedgm_kit's boundary, so MSD and HSD equal MONAI's symmetric average surface
  distance (``compute_average_surface_distance(symmetric=True)``: the mean over both boundary point
  sets pooled -- not the mean of the two directed means, which differs whenever the two boundaries
  have different sizes) and symmetric Hausdorff distance (``compute_hausdorff_distance``, no
  percentile, not directed), with anisotropic spacing and in 3D.
- MONAI's ``percentile=95`` takes the percentile of each direction separately and keeps the larger;
  ``directed=True`` measures prediction -> truth only; one empty mask gives inf (pedgm_kit: NaN).
  pedgm_kit has no HD95 and no directed variant, so these are not compared.
- scikit-image's ``hausdorff_distance`` works on all nonzero pixels in pixel units (no spacing): it
  equals HSD when given the two boundaries at isotropic spacing (times the pixel size). Its
  ``"modified"`` method is the larger of the two directed means, not MSD.
- SHD / SMD (skeleton of one mask to the boundary of the other, both directions pooled) are rebuilt
  from ``thin`` skeletons, the boundaries and MONAI's ``get_surface_distance``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from reference_thinning import skeletonize_stack as reference_skeletons
from scipy import ndimage as ndi

from pedgm_kit.metrics import (
    _boundary,
    _skeletonize_stack,
    per_slice_metrics,
    slice_metrics,
    volume_metrics,
)

thin = pytest.importorskip("skimage.morphology").thin  # a dependency of pedgm_kit: never missing
from skimage.metrics import hausdorff_distance  # noqa: E402

CROSS = ndi.generate_binary_structure(2, 1)


def _random_masks(n: int, seed: int, *, max_size: int = 80):
    """Blobby masks of many sizes (smoothed noise thresholded), lines, holes, border contact."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(3, max_size, 2))
        yield ndi.gaussian_filter(rng.random((h, w)), rng.uniform(0.5, 5)) > rng.uniform(0.4, 0.6)


def _pairs(n: int, seed: int):
    masks = list(_random_masks(2 * n, seed))
    for p, t in zip(masks[::2], masks[1::2]):
        h, w = min(p.shape[0], t.shape[0]), min(p.shape[1], t.shape[1])
        p, t = p[:h, :w], t[:h, :w]
        if p.any() and t.any():
            yield p, t


def _perturbed(mask: np.ndarray, rng) -> np.ndarray:
    """A plausible prediction of a real mask: dilated or eroded, shifted, with a bite."""
    out = ndi.binary_dilation(mask) if rng.random() < 0.5 else ndi.binary_erosion(mask)
    out = np.roll(out, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
    if out.any():
        cy, cx = np.argwhere(out)[rng.integers(out.sum())]
        yy, xx = np.indices(out.shape)
        out &= (yy - cy) ** 2 + (xx - cx) ** 2 > 4
    return out


@pytest.fixture(scope="module")
def sample_masks(gm_challenge, t2s_dir):
    """Every labelled sample GM mask as (name, bool volume, voxel sizes), slices along axis 2."""
    import nibabel as nib

    paths = sorted(gm_challenge.glob("derivatives/labels/*/anat/*_gmseg-manual.nii.gz"))
    paths += sorted(t2s_dir.glob("*gmseg*manual*.nii.gz"))
    assert len(paths) == 10, paths
    out = []
    for path in paths:
        img = nib.load(path)
        out.append((path.name, np.asarray(img.dataobj) > 0.5, nib.affines.voxel_sizes(img.affine)))
    return out


# ------------------------------------------------------------------------------------------------
# skeletons
# ------------------------------------------------------------------------------------------------


def test_skeleton_is_thin_and_the_replaced_code_on_every_labelled_sample_slice(sample_masks):
    n_slices = 0
    for name, volume, _ in sample_masks:
        stack = np.moveaxis(volume, 2, 0)
        stack = stack[stack.any(axis=(1, 2))]
        ours = _skeletonize_stack(stack)
        np.testing.assert_array_equal(ours, reference_skeletons(stack), err_msg=name)
        for k in range(len(stack)):
            np.testing.assert_array_equal(ours[k], thin(stack[k]), err_msg=f"{name} slice {k}")
        n_slices += len(stack)
    assert n_slices == 164


def test_skeleton_matches_on_random_masks():
    masks = list(_random_masks(400, seed=0))
    for m in masks:
        np.testing.assert_array_equal(_skeletonize_stack(m[None])[0], thin(m))
        np.testing.assert_array_equal(reference_skeletons(m[None])[0], thin(m))
    # many slices of different sizes in one packed call, as per_slice_metrics uses it
    size = 90
    stack = np.zeros((len(masks), size, size), bool)
    for k, m in enumerate(masks):
        stack[k, : m.shape[0], : m.shape[1]] = m
    np.testing.assert_array_equal(_skeletonize_stack(stack), reference_skeletons(stack))


def test_skeleton_matches_on_all_4x4_masks():
    codes = np.arange(1 << 16)
    masks = ((codes[:, None] >> np.arange(16)) & 1).astype(bool).reshape(-1, 4, 4)
    np.testing.assert_array_equal(_skeletonize_stack(masks), reference_skeletons(masks))
    # and thin on each mask alone (tiled with background gaps, one call)
    tiled = np.zeros((256, 5, 256, 5), bool)
    tiled[:, :4, :, :4] = masks.reshape(256, 256, 4, 4).transpose(0, 2, 1, 3)
    alone = thin(tiled.reshape(1280, 1280)).reshape(256, 5, 256, 5)[:, :4, :, :4].transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(_skeletonize_stack(masks), alone.reshape(-1, 4, 4))


def test_skeletonize_is_a_different_algorithm():
    ell = np.array([[1, 1], [1, 0]], bool)  # a 3-pixel L
    from skimage.morphology import skeletonize

    assert _skeletonize_stack(ell[None])[0].tolist() == [[False, True], [True, False]]
    assert skeletonize(ell).tolist() == [[False, True], [False, False]]


@pytest.mark.slow
def test_skeletons_identical_on_the_challenge_models_predictions(gm_challenge, challenge_segmenter):
    """The demo's predictions: the challenge model on every labelled run-1 sample scan."""
    scans = sorted(gm_challenge.glob("sub-*/anat/*_run-1_T2starw.nii.gz"))
    assert len(scans) == 8
    for path in scans:
        pred = np.asanyarray(challenge_segmenter.segment(path).dataobj) > 0
        stack = np.moveaxis(pred, 2, 0)
        np.testing.assert_array_equal(_skeletonize_stack(stack), reference_skeletons(stack), err_msg=path.name)


# ------------------------------------------------------------------------------------------------
# surface distances
# ------------------------------------------------------------------------------------------------


def _monai(pred: np.ndarray, truth: np.ndarray, spacing) -> tuple[float, float]:
    """(MSD, HSD) of MONAI: symmetric average surface distance and Hausdorff distance."""
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    p, t = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (pred, truth))  # (batch, channel, ...)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI 1.5-1.6: always_return_as_numpy deprecation
        hsd = mm.compute_hausdorff_distance(p, t, include_background=True, spacing=list(spacing))
        msd = mm.compute_average_surface_distance(p, t, include_background=True, symmetric=True, spacing=list(spacing))
    return float(msd[0, 0]), float(hsd[0, 0])


def _monai_skeleton_distances(pred: np.ndarray, truth: np.ndarray, spacing) -> tuple[float, float]:
    """(SHD, SMD) rebuilt from thin skeletons, boundaries and MONAI's point-to-surface distances."""
    pytest.importorskip("torch")
    from monai.metrics.utils import get_surface_distance

    b_p, b_t = _boundary(pred, CROSS), _boundary(truth, CROSS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        d = np.concatenate([
            np.asarray(get_surface_distance(thin(pred), b_t, spacing=list(spacing))),
            np.asarray(get_surface_distance(thin(truth), b_p, spacing=list(spacing))),
        ])
    return float(d.max()), float(np.median(d))


@pytest.mark.parametrize("spacing", [(0.4, 0.4), (0.5, 0.3)])
def test_msd_hsd_shd_smd_equal_monai_on_random_masks(spacing):
    checked = 0
    for p, t in _pairs(150, seed=1):
        got = slice_metrics(p, t, spacing_mm=spacing)
        msd, hsd = _monai(p, t, spacing)
        shd, smd = _monai_skeleton_distances(p, t, spacing)
        assert got["MSD"] == pytest.approx(msd, rel=1e-6, abs=1e-6)
        assert got["HSD"] == pytest.approx(hsd, rel=1e-6, abs=1e-6)
        assert got["SHD"] == pytest.approx(shd, rel=1e-6, abs=1e-6)
        assert got["SMD"] == pytest.approx(smd, rel=1e-6, abs=1e-6)
        checked += 1
    assert checked > 100


def test_distances_equal_monai_on_the_real_sample_masks(sample_masks):
    """Every labelled slice against a perturbed copy, at the file's own (anisotropic) spacing and at 0.5 x 0.3 mm."""
    rng = np.random.default_rng(2)
    for name, volume, voxel in sample_masks:
        for spacing in (tuple(voxel[:2]), (0.5, 0.3)):
            truth = volume
            pred = np.stack([_perturbed(volume[..., k], rng) for k in range(volume.shape[2])], axis=2)
            frame = per_slice_metrics(pred, truth, spacing_mm=(*spacing, voxel[2]))
            for k in np.flatnonzero(truth.any(axis=(0, 1)) & pred.any(axis=(0, 1))):
                msd, hsd = _monai(pred[..., k], truth[..., k], spacing)
                assert frame.loc[k, "MSD"] == pytest.approx(msd, rel=1e-6, abs=1e-6), (name, k)
                assert frame.loc[k, "HSD"] == pytest.approx(hsd, rel=1e-6, abs=1e-6), (name, k)


def test_volume_distances_equal_monai_3d(sample_masks):
    rng = np.random.default_rng(3)
    for name, volume, voxel in sample_masks:
        pred = np.stack([_perturbed(volume[..., k], rng) for k in range(volume.shape[2])], axis=2)
        got = volume_metrics(pred, volume, spacing_mm=tuple(voxel), axis=2)
        msd, hsd = _monai(pred, volume, tuple(voxel))
        assert got["MSD"] == pytest.approx(msd, rel=1e-6, abs=1e-6), name
        assert got["HSD"] == pytest.approx(hsd, rel=1e-6, abs=1e-6), name


def test_hsd_equals_skimage_hausdorff_of_the_boundaries():
    for s in (0.25, 0.4):
        for p, t in _pairs(80, seed=4):
            expected = hausdorff_distance(_boundary(p, CROSS), _boundary(t, CROSS)) * s  # pixels -> mm
            assert slice_metrics(p, t, spacing_mm=(s, s))["HSD"] == pytest.approx(expected, rel=1e-12)


def test_msd_is_not_the_mean_of_the_directed_means():
    """A documented definitional difference: pooled mean (ours, MONAI symmetric) vs mean of two means."""
    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    pred = np.zeros_like(truth)
    pred[8:12, 8:12] = True  # boundaries of 36 and 12 pixels
    b_p, b_t = _boundary(pred, CROSS), _boundary(truth, CROSS)
    d_pt = ndi.distance_transform_edt(~b_t)[b_p]
    d_tp = ndi.distance_transform_edt(~b_p)[b_t]
    pooled = np.concatenate([d_pt, d_tp]).mean()
    assert slice_metrics(pred, truth)["MSD"] == pytest.approx(pooled)
    assert pooled != pytest.approx((d_pt.mean() + d_tp.mean()) / 2)
    assert _monai(pred, truth, (1.0, 1.0))[0] == pytest.approx(pooled, rel=1e-6)
