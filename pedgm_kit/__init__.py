"""pedgm_kit: adapt the sct_deepseg_gm gray-matter network to new data by transfer learning.

Modules, one per thing a user does:

- :mod:`pedgm_kit.registry` -- fetch weights and sample data (sha256-checked, cached, mirrorable)
- :mod:`pedgm_kit.io` -- load/validate/save NIfTI images, working orientation
- :mod:`pedgm_kit.model` -- the deepseg_gm network in Keras 3, SCT's legacy HDF5 weights, ONNX export
- :mod:`pedgm_kit.segment` -- SCT-style inference with cord-centred windows
- :mod:`pedgm_kit.datasets` -- discover scans and masks (BIDS, the original study's folders)
- :mod:`pedgm_kit.splits` -- person-grouped, balanced train/val/test splits
- :mod:`pedgm_kit.preprocess` -- scans onto the model grid, QC montages, draft masks
- :mod:`pedgm_kit.data_creation` -- split arrays (.npz), manifest, array/NIfTI check
- :mod:`pedgm_kit.augment` -- the original study's augmentation with ``keras.ops``
- :mod:`pedgm_kit.train` -- the four transfer-learning variants
- :mod:`pedgm_kit.metrics`, :mod:`pedgm_kit.evaluate`, :mod:`pedgm_kit.stats` -- SCGM metrics, tables,
  figures, paired statistics, test-retest reproducibility
- :mod:`pedgm_kit.viewer` -- ipywidget viewers of predicted vs manual masks
- :mod:`pedgm_kit.runner`, :mod:`pedgm_kit.cli` -- papermill runs, SLURM scripts, the ``pedgm`` command
"""

__version__ = "0.1.0"
