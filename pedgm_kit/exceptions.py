"""Errors raised by pedgm_kit.

Every error a user can cause derives from :class:`PedgmError`; its message is one line that says
which file (or argument) is wrong, what was expected and what was found. The CLI prints it and
exits with status 2.
"""


class PedgmError(Exception):
    """Base class of all user-facing pedgm_kit errors."""


class InputFileError(PedgmError):
    """A file is missing, unreadable, or not of the expected type."""


class DimensionError(PedgmError):
    """An image has the wrong number of dimensions or an unusable shape."""


class ImageContentError(PedgmError):
    """An image holds values that cannot be processed (NaN, infinite, constant, non-binary mask)."""


class GridMismatchError(PedgmError):
    """Two images that must share a voxel grid (shape and affine) do not."""


class WeightsError(PedgmError):
    """A weights file is corrupt, truncated or does not fit the model."""


class ChecksumError(PedgmError):
    """A fetched file does not have the registered sha256."""


class DataUnavailableError(PedgmError):
    """A registered file is not cached, not in the mirror and could not be downloaded."""


class OutputExistsError(PedgmError):
    """The output file exists and overwriting was not requested."""


class ParameterError(PedgmError, ValueError):
    """An argument is out of its allowed range or of the wrong kind."""
