"""Parameter files: YAML read strictly and checked against the notebooks' own parameters.

A parameter file maps notebook sections (:data:`SECTIONS`: ``preprocess`` -> ``01_preprocess``,
``data`` -> ``02_data_creation``, ``augment`` -> ``03_augment``, ``train`` -> ``04_train``,
``evaluate`` -> ``05_evaluate``) to that notebook's papermill parameters. The schema is read from the
notebooks themselves -- the names and literal defaults of their ``parameters`` cell -- so it cannot
drift from them; :data:`RULES` adds the ranges and allowed values a default cannot express.

Everything is checked before anything runs, and every problem is reported in one error:
unknown sections and keys (with the nearest valid name), values of the wrong type or out of range,
duplicate keys (YAML would silently keep the last), an empty file, a file that is not UTF-8 or not
YAML. papermill's own "unknown parameter" notices are therefore never the only signal.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .exceptions import InputFileError, ParameterError

__all__ = ["NOTEBOOKS", "RULES", "SECTIONS", "Parameter", "check_section", "dataset_problems", "load_params",
           "notebook_parameters"]

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"  # package data (in a checkout: a link to notebooks/)

#: Parameter-file section -> notebook (``pipeline`` is the runner's own section, :data:`PIPELINE`).
SECTIONS: dict[str, str] = {
    "preprocess": "01_preprocess.ipynb",
    "data": "02_data_creation.ipynb",
    "augment": "03_augment.ipynb",
    "train": "04_train.ipynb",
    "evaluate": "05_evaluate.ipynb",
    "pipeline": "",
}


def _positive(v) -> bool:
    return v > 0


def _non_negative(v) -> bool:
    return v >= 0


def _fraction(v) -> bool:
    return 0 < v < 1


def _probability(v) -> bool:
    return 0 <= v <= 1


def _seed(v) -> bool:
    return 0 <= v < 2**32


#: Ranges and allowed values beyond the type of the default: name -> (description, check).
RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "layout": ("'bids' or 'folders'", lambda v: v in ("bids", "folders")),
    "spacing_mm": ("a positive number of mm (0.05-5)", lambda v: 0.05 <= v <= 5),
    "window": ("an integer >= 16 (pixels)", lambda v: v >= 16),
    "max_drafts": ("an integer >= 0", _non_negative),
    "n_qc_shown": ("an integer >= 0", _non_negative),
    "seed": ("an integer in [0, 2**32)", _seed),
    "split_seed": ("an integer in [0, 2**32)", _seed),
    "smoke_max_scans": ("a positive integer", _positive),
    "smoke_max_drafts": ("an integer >= 0", _non_negative),
    "smoke_max_slices": ("a positive integer", _positive),
    "smoke_epochs": ("a positive integer", _positive),
    "smoke_n_boot": ("a positive integer", _positive),
    "fractions": ("three positive fractions summing to 1", lambda v: len(v) == 3 and all(x > 0 for x in v)
                  and math.isclose(sum(v), 1.0, abs_tol=1e-6)),
    "split_fractions": ("three positive fractions summing to 1", lambda v: len(v) == 3 and all(x > 0 for x in v)
                        and math.isclose(sum(v), 1.0, abs_tol=1e-6)),
    "n_preview": ("a positive integer", _positive),
    "multiplier": ("a positive integer", _positive),
    "p_geometric": ("a probability in [0, 1]", _probability),
    "epochs": ("a positive integer", _positive),
    "patience": ("an integer >= 0", _non_negative),
    "min_delta": ("a number >= 0", _non_negative),
    "batch_size": ("a positive integer", _positive),
    "learning_rate": ("a positive number", lambda v: 0 < v < 10),
    "freeze": ("'none' or 'early'", lambda v: v in ("none", "early")),
    "max_slices": ("an integer >= 0 (0 = all)", _non_negative),
    "n_boot": ("a positive integer", _positive),
    "alpha": ("a number in (0, 1)", _fraction),
    "split": ("'test' or 'all'", lambda v: v in ("test", "all")),
    "retest_slices": ("'labelled' or 'all'", lambda v: v in ("labelled", "all")),
    "n_summary_slices": ("a positive integer", _positive),
    "stat_metrics": ("names of pedgm_kit.metrics.METRICS", lambda v: set(v) <= {
        "DSC", "JI", "CC", "TPR", "TNR", "PPV", "MSD", "HSD", "SHD", "SMD"}),
}


def _shift_ok(v) -> bool:
    from .shift import parse_shift

    try:
        parse_shift(v)
    except Exception:  # noqa: BLE001 - any failure means "not a valid shift"
        return False
    return True


def _cord_scale_ok(v) -> bool:
    if isinstance(v, str):
        return v in ("", "auto")
    from .segment.cord_scale import check_cord_scale  # numbers: the range the segmenter enforces

    try:
        check_cord_scale(v)
    except ValueError:
        return False
    return True


#: Parameters whose value may be of another kind than the notebook's default (a number where the
#: default is a string): the rule alone decides.
_ANY_KIND = {"cord_scale"}


RULES.update({
    "shift": ("'', 'invert', 'scale:<factor>' (factor 0.3-2, not 1) or 'gamma:<g>' (g 0.2-5, not 1)", _shift_ok),
    "cord_scale": ("'' (off), 'auto' or a number in 0.4-1.6 (as --cord-scale)", _cord_scale_ok),
    "cv_folds": ("0 (one split) or an integer >= 2", lambda v: v == 0 or v >= 2),
    "val_fraction": ("a number in (0, 1)", _fraction),
    "train_persons": ("an integer >= 0 (0 = all)", _non_negative),
    "loss": ("'dice' or 'dice_bce'", lambda v: v in ("dice", "dice_bce")),
    "warmup_epochs": ("an integer >= 0", _non_negative),
    "uncertainty": ("'tta', 'mc_dropout' or ''", lambda v: v in ("", "tta", "mc_dropout")),
})


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter: its name, default (from the notebook) and the comment beside it."""

    name: str
    default: Any
    comment: str
    rule: tuple[str, Callable[[Any], bool]] | None = None

    def problem(self, value) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or None."""
        expected = _type_name(self.default)
        if self.name not in _ANY_KIND and not _same_kind(value, self.default):
            return f"must be {expected}, got {_describe(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        rule = self.rule or RULES.get(self.name)
        if rule is not None:
            text, ok = rule
            try:
                good = bool(ok(value))
            except (TypeError, ValueError):
                good = False
            if not good:
                return f"must be {text}, got {value!r}"
        return None


def _same_kind(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        if not isinstance(value, list):
            return False
        kinds = {type(x) for x in default}
        return all(_same_kind(x, default[0]) for x in value) if len(kinds) == 1 else True  # [] : any items
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True  # None: anything


def _type_name(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        inner = f" of {_type_name(default[0]).removeprefix('a ').removeprefix('an ')}s" if default else ""
        return f"a list{inner}"
    if isinstance(default, dict):
        return "a mapping"
    return "a value"


def _describe(value) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


@lru_cache(maxsize=16)
def notebook_parameters(notebook: str) -> dict[str, Parameter]:
    """The parameters of a notebook's ``parameters`` cell: names, literal defaults and comments.

    Parameters
    ----------
    notebook : str
        File name under ``notebooks/`` (e.g. ``"04_train.ipynb"``) or a path.
    """
    path = Path(notebook) if os.sep in notebook else NOTEBOOKS / notebook
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise InputFileError(f"{path}: no cell tagged 'parameters'")
    source = "".join(cell["source"])
    comments = {}
    for line in source.splitlines():
        name, _, rest = line.partition("=")
        if rest and "#" in rest:
            comments[name.strip()] = rest.split("#", 1)[1].strip()
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            out[name] = Parameter(name, ast.literal_eval(node.value), comments.get(name, ""))
    return out


def _variant_names(v) -> bool:
    from .train.config import ADAPTED_VARIANT, VARIANTS

    return (len(v) > 0 and all(isinstance(x, str) and x in {**VARIANTS, **ADAPTED_VARIANT} for x in v)
            and len(set(v)) == len(v))


def _persons_list(v) -> bool:
    return all((isinstance(x, int) and not isinstance(x, bool) and x >= 1) or x == "all" for x in v) and len(v) > 0


#: The ``pipeline`` section: what ``pedgm run`` trains (:mod:`pedgm_kit.runner`).
PIPELINE: dict[str, Parameter] = {}


def _pipeline_parameters() -> dict[str, Parameter]:
    if not PIPELINE:
        names = ("a non-empty list of variant names, each once (leave the key out for the default)", _variant_names)
        for name, default, comment, rule in (
            ("variants", ["pretrained_aug"], "training variants (default the original four)", names),
            ("adapted_variant", True, "also train pretrained_adapted (Dice + BCE)", None),
            ("train_persons", [], "data-efficiency curve: training-person counts, e.g. [1, 2, 4, all]",
             ("a list of person counts (integers >= 1) and/or 'all'", _persons_list)),
            ("curve_variants", ["pretrained_noaug"], "variants of the data-efficiency curve", names),
        ):
            PIPELINE[name] = Parameter(name, default, comment, rule)
    return PIPELINE


def check_section(section: str, values: Mapping[str, Any], *, where: str) -> list[str]:
    """Problems of one section's values (unknown keys with the nearest valid name, bad values)."""
    known = _pipeline_parameters() if section == "pipeline" else notebook_parameters(SECTIONS[section])
    problems = []
    for key, value in values.items():
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (valid: {', '.join(sorted(known))})"
            problems.append(f"unknown key '{section}.{key}'{hint}")
            continue
        why = known[key].problem(value)
        if why:
            problems.append(f"'{section}.{key}' {why}")
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
            known = _pipeline_parameters() if section == "pipeline" else notebook_parameters(SECTIONS[section])
            if key in known:
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
    validation and one for testing. The persons are those of the dataset ``preprocess`` names
    (``data_dir`` ``""``: the bundled sample), discovered without reading any image. Nothing is
    reported when the dataset cannot be read here (e.g. a cluster path): notebook 02 checks again.
    """
    folds = params.get("data", {}).get("cv_folds", 0) or 0
    sizes = [("pipeline.train_persons", s) for s in params.get("pipeline", {}).get("train_persons", []) if s != "all"]
    if params.get("train", {}).get("train_persons"):
        sizes.append(("train.train_persons", params["train"]["train_persons"]))
    if not folds and not sizes:
        return []
    pre = {**{k: p.default for k, p in notebook_parameters(SECTIONS["preprocess"]).items()}, **params.get("preprocess", {})}
    n = _persons_in_dataset(str(pre["data_dir"]), str(pre["layout"]), str(pre["ids_file"]),
                            str(pre["second_ids_file"]), str(pre["image_name"]), str(pre["gm_name"]))
    if n is None:
        return []
    where = f"the dataset '{pre['data_dir'] or 'gm-challenge-data (bundled)'}' has {n} person(s)"
    problems = []
    if folds > n:
        problems.append(f"'data.cv_folds' is {folds} but {where}; at most {n} folds")
    for key, size in sizes:
        if size > n - 2:
            problems.append(f"'{key}' asks for {size} training person(s) but {where}; at most {max(n - 2, 0)} can "
                            "train (one each is kept for validation and test)")
    return problems


@lru_cache(maxsize=32)
def _persons_in_dataset(data_dir: str, layout: str, ids_file: str, second_ids_file: str, image_name: str,
                        gm_name: str) -> int | None:
    """Number of persons with a labelled scan in a dataset, or None when it cannot be read here."""
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
    return len(index.persons())
