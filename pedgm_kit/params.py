"""Parameter files: YAML read strictly and checked against the parameter schema.

A parameter file maps notebook sections (:data:`SECTIONS`: ``preprocess`` -> ``01_preprocess``,
``data`` -> ``02_data_creation``, ``augment`` -> ``03_augment``, ``train`` -> ``04_train``,
``evaluate`` -> ``05_evaluate``; ``pipeline``: what ``pedgm run`` trains) to that notebook's papermill
parameters. Names, types, ranges, allowed values and defaults come from :mod:`pedgm_kit.schema`, the
one place they are written (the notebooks' ``parameters`` cells are rendered from it, and a test
keeps them equal).

Everything is checked before anything runs, and every problem is reported in one error:
unknown sections and keys (with the nearest valid name), values of the wrong type or out of range,
duplicate keys (YAML would silently keep the last), an empty file, a file that is not UTF-8 or not
YAML. papermill's own "unknown parameter" notices are therefore never the only signal.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .exceptions import InputFileError, ParameterError
from .schema import SCHEMA, SECTIONS, Param, _describe, section_problems

__all__ = ["NOTEBOOKS", "SECTIONS", "Parameter", "check_section", "dataset_problems", "load_params",
           "notebook_parameters", "section_parameters"]

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"  # package data (in a checkout: a link to notebooks/)

#: One parameter (:class:`pedgm_kit.schema.Param`).
Parameter = Param


def section_parameters(section: str) -> dict[str, Param]:
    """The parameters a parameter file may set in ``section``: its notebook's (``pipeline``: the runner's)."""
    return {name: p for name, p in SCHEMA[section].items() if p.notebook or not SECTIONS[section]}


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, Param]:
    """The parameters of a notebook's ``parameters`` cell, by its file name (e.g. ``"04_train.ipynb"``)."""
    name = Path(notebook).name
    section = next((s for s, n in SECTIONS.items() if n and n == name), None)
    if section is None:
        known = ", ".join(filter(None, SECTIONS.values()))
        raise InputFileError(f"{notebook}: not one of the pipeline's notebooks ({known})")
    return section_parameters(section)


def _pipeline_parameters() -> dict[str, Param]:
    return section_parameters("pipeline")


def check_section(section: str, values: Mapping[str, Any], *, where: str) -> list[str]:
    """Problems of one section's values (unknown keys with the nearest valid name, bad values)."""
    known = section_parameters(section)
    problems = []
    for key in values:
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (valid: {', '.join(sorted(known))})"
            problems.append(f"unknown key '{section}.{key}'{hint}")
    checked = {k: v for k, v in values.items() if k in known}
    problems += [f"'{section}.{key}' {why}" if key else f"'{section}': {why}"
                 for key, why in section_problems(section, checked)]
    return problems


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing duplicate keys (plain YAML keeps the last one silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_params(path: str | os.PathLike) -> dict[str, dict]:
    """Read and check a YAML parameter file into ``{section: {parameter: value}}``.

    A file without any section name at its top level is refused, naming the sections it lacks (and
    the section its keys belong to), rather than being read as one section with the others on
    their defaults. Counts that depend on the dataset (``data.cv_folds``, the ``train_persons``
    sizes) are checked against the persons of the dataset ``preprocess.data_dir`` names, when it
    can be read here (:func:`dataset_problems`), so an impossible plan fails before anything runs.

    Raises
    ------
    InputFileError
        Missing, not UTF-8, not YAML, empty, or not a mapping.
    ParameterError
        Unknown sections or keys, duplicate keys, wrong types or values out of range: one message
        naming the file and every problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"No such file or no access: '{path}' (parameter file)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise InputFileError(f"Cannot read parameter file '{path}': {err.strerror or err}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        problem = str(getattr(err, "problem", "") or "")
        if problem.startswith("duplicate key"):
            raise ParameterError(f"{path}: {problem}; each key may appear once") from None
        detail = " ".join(line.strip() for line in str(err).splitlines() if line.strip())[:300]
        raise InputFileError(f"{path}: not valid YAML ({detail})") from None
    if data is None:
        raise InputFileError(f"{path}: the parameter file is empty; expected sections {', '.join(SECTIONS)}")
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a mapping of sections to parameters, got {type(data).__name__}")
    problems = []
    if not any(key in SECTIONS for key in data):
        near = {k: difflib.get_close_matches(str(k), list(SECTIONS), n=1, cutoff=0.75) for k in data}
        misspelt = {k: v[0] for k, v in near.items() if v}
        if misspelt:
            problems += [f"unknown section '{k}' (did you mean '{v}'?)" for k, v in misspelt.items()]
            raise ParameterError(f"{path}: " + "; ".join(problems))
        raise ParameterError(f"{path}: no section: the file lacks every section ({', '.join(SECTIONS)})"
                             + _belongs_to(data))
    for key, value in data.items():
        if key not in SECTIONS:
            near = difflib.get_close_matches(str(key), list(SECTIONS), n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (valid: {', '.join(SECTIONS)})"
            problems.append(f"unknown section '{key}'{hint}")
        elif not isinstance(value, dict):
            problems.append(f"section '{key}' must be a mapping of parameters, got {_describe(value)}")
        else:
            problems += check_section(key, value, where=str(path))
    if not problems:
        problems = dataset_problems(data)
    if problems:
        raise ParameterError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems))
    return data


def _belongs_to(keys) -> str:
    """`` (top-level keys 'epochs' belong under 'train:')``: where a sectionless file's keys go."""
    owners: dict[str, list[str]] = {}
    for key in keys:
        for section in SECTIONS:
            if key in section_parameters(section):
                owners.setdefault(section, []).append(str(key))
                break
    if not owners:
        return "; put each key under its section, e.g. 'train:'"
    return "; " + ", ".join(f"top-level keys {', '.join(map(repr, ks))} belong under '{s}:'"
                            for s, ks in owners.items())


def dataset_problems(params: Mapping[str, Mapping]) -> list[str]:
    """Counts of a checked parameter set that the dataset cannot satisfy.

    ``data.cv_folds`` needs at least that many persons; a training-person count
    (``pipeline.train_persons``, ``train.train_persons``) at most the persons minus one kept for
    validation and one for testing; ``data.locked_test_persons`` must name persons of the dataset (or a
    fraction locking at least one) and leave enough for the folds (:func:`pedgm_kit.splits.locked_problems`),
    and the other counts are then checked on the persons left. The persons are those of the dataset ``preprocess`` names
    (``data_dir`` ``""``: the bundled sample), discovered without reading any image. Nothing is
    reported when the dataset cannot be read here (e.g. a cluster path): notebook 02 checks again.
    """
    data = params.get("data", {})
    folds = data.get("cv_folds", 0) or 0
    locked = data.get("locked_test_persons") or []
    sizes = [("pipeline.train_persons", s) for s in params.get("pipeline", {}).get("train_persons", []) if s != "all"]
    if params.get("train", {}).get("train_persons"):
        sizes.append(("train.train_persons", params["train"]["train_persons"]))
    if not folds and not sizes and not locked:
        return []
    pre = {**{k: p.default for k, p in section_parameters("preprocess").items()}, **params.get("preprocess", {})}
    scans = _dataset_scans(str(pre["data_dir"]), str(pre["layout"]), str(pre["ids_file"]),
                           str(pre["second_ids_file"]), str(pre["image_name"]), str(pre["gm_name"]))
    if scans is None:
        return []
    dataset = f"the dataset '{pre['data_dir'] or 'gm-challenge-data (bundled)'}'"
    problems = []
    if locked:  # data.locked_test_persons: known persons, and enough left for the folds (pedgm_kit.splits.locked)
        from .splits.locked import choose_locked_persons, locked_problems

        options = {"balance_on": data.get("balance_on") or None, "seed": data.get("seed", 0)}
        problems += locked_problems(scans, locked, cv_folds=folds, where=dataset, **options)
        if problems:
            return problems
        scans = scans[~scans["person_id"].isin(choose_locked_persons(scans, locked, **options))]
    n = scans["person_id"].nunique()
    where = f"{dataset} has {n} person(s)" + (" besides the locked test persons" if locked else "")
    if folds > n:
        problems.append(f"'data.cv_folds' is {folds} but {where}; at most {n} folds")
    for key, size in sizes:
        if size > n - 2:
            problems.append(f"'{key}' asks for {size} training person(s) but {where}; at most {max(n - 2, 0)} can "
                            "train (one each is kept for validation and test)")
    return problems


@lru_cache(maxsize=32)
def _dataset_scans(data_dir: str, layout: str, ids_file: str, second_ids_file: str, image_name: str,
                   gm_name: str):
    """The labelled scans of a dataset (its index's frame: never modify it), or None when it cannot be read here."""
    import warnings

    from .exceptions import PedgmError

    try:
        if data_dir:
            root = Path(data_dir)
            if not root.is_dir():
                return None
        else:
            from .registry import fetch_group

            root = fetch_group("gm-challenge-data")
        from .datasets import discover

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            index = discover(root, layout=layout, ids_file=ids_file, second_ids_file=second_ids_file,
                             image_name=image_name, gm_name=gm_name, validate=False)
    except (PedgmError, OSError, ValueError):  # ValueError: e.g. a NUL byte in the path
        return None
    return index.to_frame()
