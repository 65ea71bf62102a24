"""pedgm_kit: adapt the sct_deepseg_gm gray-matter network to new data by transfer learning.

Modules, one per thing a user does:

- :mod:`pedgm_kit.registry` -- fetch weights and sample data (sha256-checked, cached, mirrorable)
- :mod:`pedgm_kit.io` -- load/validate/save NIfTI images
- :mod:`pedgm_kit.model` -- the deepseg_gm network in Keras 3 and SCT's legacy HDF5 weights
- :mod:`pedgm_kit.segment` -- SCT-style inference with cord-centred windows
- :mod:`pedgm_kit.cli` -- the ``pedgm`` command line
"""

__version__ = "0.1.0"
