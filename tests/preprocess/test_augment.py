import numpy as np
import pytest
from scipy import ndimage

from pedgm_kit.augment import (
    AugmentConfig,
    PairedAugmentation,
    augment_numpy,
    materialise,
    sample_params,
)
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.metrics import dice
from pedgm_kit.train import make_dataset

NO_INTENSITY = {"max_intensity_ops": 0}
ONLY = {  # one geometric operation at a time, always applied
    "crop_pad": dict(p_geometric=1.0, scale=(1, 1), translate=(0, 0), rotate_deg=(0, 0), **NO_INTENSITY),
    "scale": dict(p_geometric=1.0, crop_pad=(0, 0), translate=(0, 0), rotate_deg=(0, 0), **NO_INTENSITY),
    "translate": dict(p_geometric=1.0, crop_pad=(0, 0), scale=(1, 1), rotate_deg=(0, 0), **NO_INTENSITY),
    "rotate": dict(p_geometric=1.0, crop_pad=(0, 0), scale=(1, 1), translate=(0, 0), **NO_INTENSITY),
}


@pytest.fixture
def blobs(rng):
    """Bright off-centre ellipses on a dark background; mask = the ellipse (image > half height)."""
    yy, xx = np.mgrid[:96, :96]
    images, masks = [], []
    for _ in range(6):
        cy, cx = rng.uniform(35, 60, 2)
        ry, rx = rng.uniform(8, 16, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        images.append(ndimage.gaussian_filter(inside * 100.0, 1.0) + rng.normal(0, 0.5, inside.shape))
        masks.append(inside)
    return np.stack(images).astype(np.float32), np.stack(masks).astype(np.uint8)


@pytest.mark.parametrize("op", sorted(ONLY))
def test_mask_follows_image(blobs, op):
    images, masks = blobs
    aug_images, aug_masks = augment_numpy(images, masks, np.random.default_rng(1), AugmentConfig(**ONLY[op]))
    for image, mask in zip(aug_images[..., 0], aug_masks[..., 0]):
        level = (image.max() + image.min()) / 2
        assert dice(image > level, mask) > 0.93
    assert not np.array_equal(aug_masks[..., 0], masks)  # something did move


def test_masks_binary_and_images_restandardised(blobs):
    aug_images, aug_masks = augment_numpy(*blobs, np.random.default_rng(0))
    assert aug_masks.dtype == np.uint8 and set(np.unique(aug_masks)) <= {0, 1}
    np.testing.assert_allclose(aug_images.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(aug_images.std(axis=(1, 2, 3)), 1, atol=1e-3)


def test_seeded_determinism(blobs):
    a = augment_numpy(*blobs, np.random.default_rng(7))
    b = augment_numpy(*blobs, np.random.default_rng(7))
    c = augment_numpy(*blobs, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_probabilities_are_honoured(rng):
    params = sample_params(rng, 2000, (50, 50), AugmentConfig())
    identity = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)
    untouched = np.all(np.isclose(params["transform"], identity), axis=1).mean()
    assert 0.2 < untouched < 0.3  # neither geometric step: 0.5 * 0.5
    assert 0.45 < (params["contrast"] != 1).mean() < 0.55  # each intensity group in ~half (0-4 of 4)


def test_layer_and_materialise(blobs):
    images, masks = blobs
    out = PairedAugmentation(seed=3)({"images": images[..., None], "segmentation_masks": masks[..., None]})
    assert tuple(out["images"].shape) == (6, 96, 96, 1)
    m_images, m_masks, source = materialise(images, masks, multiplier=3, seed=0)
    assert m_images.shape == (18, 96, 96) and m_masks.dtype == np.uint8
    np.testing.assert_array_equal(source, np.repeat(np.arange(6), 3))


@pytest.mark.parametrize("backend", ["tensorflow", "numpy"])
def test_input_pipelines(blobs, backend):
    images, masks = blobs[0][..., None], blobs[1][..., None].astype(np.float32)
    data = make_dataset(images, masks, batch_size=4, augment=True, seed=0,
                        backend="tensorflow" if backend == "tensorflow" else "other")
    batches = [tuple(np.asarray(t) for t in batch) for batch in data]
    assert len(batches) == 1 and batches[0][0].shape == (4, 96, 96, 1)  # remainder dropped
    assert set(np.unique(batches[0][1])) <= {0.0, 1.0}


def test_config_validation():
    with pytest.raises(ParameterError, match=r"p_geometric must be in \[0, 1\], got 1.5"):
        AugmentConfig(p_geometric=1.5)
    with pytest.raises(ParameterError, match=r"scale must be \(low, high\) with low <= high, got \(1.2, 0.8\)"):
        AugmentConfig(scale=(1.2, 0.8))
    with pytest.raises(ParameterError, match="multiplier must be >= 1"):
        materialise(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)), multiplier=0)
