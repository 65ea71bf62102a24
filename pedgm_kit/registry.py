"""Data registry: every file pedgm_kit may need, known by path, sha256, size and upstream URL.

Where a file is looked for, in order:

1. the cache folder: ``$PEDGM_DATA_DIR`` if set, else the OS user cache (``pooch.os_cache("pedgm_kit")``);
   a cached file is used only if its sha256 matches the registry;
2. the local mirror named by ``$PEDGM_DATA_MIRROR`` (a folder laid out like the registry paths,
   e.g. a copy of ``shared/pedgm-data``): the file is checked, then copied into the cache;
3. the upstream URL (pinned to a commit), downloaded with pooch into the cache and checked.

A file whose sha256 differs from the registry is never used (:class:`~pedgm_kit.exceptions.ChecksumError`).
A file that is not cached, not mirrored and cannot be downloaded raises
:class:`~pedgm_kit.exceptions.DataUnavailableError` naming the file and how to provide it.

The registry itself is ``registry.txt`` beside this module (generated from the mirror's MANIFEST.tsv).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pooch

from ._utils import atomic_path
from .exceptions import ChecksumError, DataUnavailableError, PedgmError

__all__ = [
    "BUILTIN_MODELS",
    "Entry",
    "GROUPS",
    "cache_dir",
    "fetch",
    "fetch_group",
    "group_files",
    "load_registry",
    "sha256sum",
]

MIRROR_ENV = "PEDGM_DATA_MIRROR"
CACHE_ENV = "PEDGM_DATA_DIR"

#: Named groups of registry files: name -> (path prefix, the path :func:`fetch_group` returns).
GROUPS: dict[str, tuple[str, str]] = {
    "challenge": ("models/deepseg_gm/challenge_model.", "models/deepseg_gm/challenge_model.hdf5"),
    "large": ("models/deepseg_gm/large_model.", "models/deepseg_gm/large_model.hdf5"),
    "models": ("models/deepseg_gm/", "models/deepseg_gm"),
    "gm-challenge-data": ("samples/gm-challenge-data/", "samples/gm-challenge-data"),
    "sct_testing_data": ("samples/sct_testing_data/", "samples/sct_testing_data"),
}

#: The pretrained weights known by name (SCT's deepseg_gm models): the keys of :data:`GROUPS` that
#: name one weights file.
BUILTIN_MODELS: tuple[str, ...] = ("challenge", "large")


@dataclass(frozen=True)
class Entry:
    """One registered file."""

    path: str
    sha256: str
    size_bytes: int
    url: str


def load_registry(text: str | None = None) -> dict[str, Entry]:
    """Parse the registry (``registry.txt`` lines ``path sha256 bytes url``).

    Parameters
    ----------
    text : str, optional
        Registry text; default: the packaged ``registry.txt``.

    Returns
    -------
    dict of str to Entry
        Keyed by relative path.
    """
    if text is None:
        text = resources.files(__package__).joinpath("registry.txt").read_text()
    entries = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, sha, size, url = line.split()
        entries[path] = Entry(path, sha, int(size), url)
    return entries


def cache_dir() -> Path:
    """Folder where fetched files are kept: ``$PEDGM_DATA_DIR`` or the OS user cache."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(pooch.os_cache("pedgm_kit"))


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def group_files(name: str, *, registry: dict[str, Entry] | None = None) -> list[str]:
    """Registry paths of a named group (see :data:`GROUPS`) or of a single registered path."""
    registry = load_registry() if registry is None else registry
    if name in registry:
        return [name]
    if name not in GROUPS:
        known = ", ".join(sorted(GROUPS))
        raise PedgmError(f"Unknown data name '{name}': expected one of {known}, or a registered path")
    prefix = GROUPS[name][0]
    return sorted(p for p in registry if p.startswith(prefix))


def fetch(
    path: str,
    *,
    registry: dict[str, Entry] | None = None,
    cache: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
) -> Path:
    """Return the local path of a registered file, fetching and verifying it if needed.

    Parameters
    ----------
    path : str
        Registry path, e.g. ``"models/deepseg_gm/challenge_model.hdf5"``.
    registry : dict, optional
        Registry to use (default: the packaged one).
    cache : path-like, optional
        Cache folder (default: :func:`cache_dir`).
    mirror : path-like, optional
        Local mirror folder (default: ``$PEDGM_DATA_MIRROR`` if set).

    Returns
    -------
    pathlib.Path
        The verified file in the cache.

    Raises
    ------
    ChecksumError
        The mirrored or downloaded file has another sha256 than registered.
    DataUnavailableError
        Not cached, not in the mirror, and the download failed.
    """
    registry = load_registry() if registry is None else registry
    if path not in registry:
        raise PedgmError(f"'{path}' is not in the pedgm_kit data registry")
    entry = registry[path]
    cache = Path(cache) if cache is not None else cache_dir()
    target = cache / path
    if target.is_file() and sha256sum(target) == entry.sha256:
        return target
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    if mirror is not None:
        return _copy_from_mirror(entry, Path(mirror), target)
    return _download(entry, cache)


def fetch_group(name: str, **kwargs) -> Path:
    """Fetch every file of a named group and return its main path.

    ``"challenge"`` and ``"large"`` return the ``.hdf5`` weights (their ``.json`` metadata beside
    them); dataset names return the dataset's root folder.
    """
    registry = kwargs.pop("registry", None) or load_registry()
    paths = group_files(name, registry=registry)
    local = [fetch(p, registry=registry, **kwargs) for p in paths]
    if name in registry:
        return local[0]
    cache = Path(kwargs["cache"]) if kwargs.get("cache") is not None else cache_dir()
    return cache / GROUPS[name][1]


def _copy_from_mirror(entry: Entry, mirror: Path, target: Path) -> Path:
    source = mirror / entry.path
    if not source.is_file():
        raise DataUnavailableError(
            f"{entry.path}: not found in the mirror {MIRROR_ENV}={mirror} (looked for '{source}'); "
            f"add it there or unset {MIRROR_ENV} to download it from {entry.url}"
        )
    got = sha256sum(source)
    if got != entry.sha256:
        raise ChecksumError(
            f"{entry.path}: sha256 mismatch in mirror file '{source}': expected {entry.sha256}, got {got}; "
            "refusing to use it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def _download(entry: Entry, cache: Path) -> Path:
    import requests

    fetcher = pooch.create(
        path=cache,
        base_url="",
        registry={entry.path: f"sha256:{entry.sha256}"},
        urls={entry.path: entry.url},
        retry_if_failed=1,
    )
    try:
        return Path(fetcher.fetch(entry.path, progressbar=False))
    except requests.exceptions.RequestException as err:
        raise DataUnavailableError(
            f"{entry.path}: not cached in '{cache}', {MIRROR_ENV} is not set, and downloading {entry.url} "
            f"failed ({type(err).__name__}); set {MIRROR_ENV} to a folder holding it (e.g. shared/pedgm-data) "
            f"or download it to '{cache / entry.path}'"
        ) from None
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ChecksumError(
            f"{entry.path}: downloaded file from {entry.url} does not match the registry "
            f"(expected sha256 {entry.sha256}): {err}; refusing to use it"
        ) from None
