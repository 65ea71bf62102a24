"""The same code on the JAX backend: identical masks to TensorFlow, and training through PyDataset."""

import json
import os
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.segment import segment_image

pytest.importorskip("jax", reason="jax is not installed (it is in the [dev] extra)")


@pytest.mark.slow
def test_jax_backend_segments_and_trains(tmp_path, t2s_dir, challenge_segmenter, tiny_data):
    image = t2s_dir / "t2s_uncropped.nii.gz"
    out = tmp_path / "jax_seg.nii.gz"
    script = textwrap.dedent(f"""
        import json, keras
        from pedgm_kit.segment import segment_image
        from pedgm_kit.train import TrainConfig, train_variant
        assert keras.backend.backend() == "jax"
        segment_image({str(image)!r}, model="challenge").to_filename({str(out)!r})
        s = train_variant({str(tiny_data)!r}, {str(tmp_path / "run")!r},
                          TrainConfig(epochs=1, max_slices=4, augment=True), verbose=0)
        print(json.dumps({{"backend": s["backend"], "epochs": s["epochs_run"], "val": s["best_val_dice"]}}))
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "jax" and summary["epochs"] == 1 and summary["val"] > 0.5
    tf_mask = np.asanyarray(segment_image(image, model=challenge_segmenter).dataobj)
    np.testing.assert_array_equal(np.asanyarray(nib.load(out).dataobj), tf_mask)
