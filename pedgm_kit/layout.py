"""The run folder: the one place that knows where each step writes what, and the records it writes.

Every module and notebook builds a run's paths through this module, never with literals or
f-strings at the call site. A run folder (``outputs/<run-id>/``, :class:`RunLayout`)::

    parameters.yaml  state.json  index.html
    preprocess/      preprocess.json, preprocessed/ (NIfTIs + index.csv), qc/, drafts/ (review.csv),
                     simulated-<name>/ (a SIMULATED copy of the dataset)
    data/            manifest.json, data_creation.json, split_table.csv, split_counts.png,
                     data/[fold-<k>/]{train,val,test}.npz + scans.json
    augment/         augment.json, augmentation_preview.png
    train/           plan.json (every training run: fold, variant, person subset),
                     [fold-<k>/][persons-<n>/]<variant>/ (best.hdf5, best.json, summary.json, history.csv, ...),
                     final/<variant>/fold-<k>/ (the delivered ensemble)
    evaluation/      results.json and the tables and figures of :data:`EVALUATION_FILES`

The JSON files read across rooms have typed records with a ``schema_version``
(:class:`Manifest` for ``manifest.json``, :class:`TrainSummary` for ``summary.json``,
:class:`TrainPlan` for ``plan.json``, :class:`EvaluationResults` for ``results.json``).
``to_json`` writes every field plus any key the record does not know (kept in ``extra``), and
``from_json`` reads files written before the record existed (no ``schema_version``: version 0).
Folds and variants are enumerated from records (:meth:`Manifest.fold_numbers`,
:meth:`TrainPlan.runs`), never from folder names.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .exceptions import InputFileError

__all__ = [
    "EVALUATION_FILES", "FILE_NAMES", "SCHEMA_VERSION", "EvaluationResults", "Manifest", "PlannedRun", "RunLayout",
    "TrainPlan", "TrainSummary", "evaluation_path", "fold_dir", "fold_folder", "fold_members", "fold_of", "plan_path", "split_arrays",
    "variant_dir", "PREDICTION_CACHE_DIR",
]

#: Version of the records this module writes (``schema_version`` in each JSON file).
SCHEMA_VERSION = 1

# ---- file names -----------------------------------------------------------------------------------
PARAMETERS_FILE = "parameters.yaml"  # the parameter file a run used (``pedgm run --resume`` reads it)
STATE_FILE = "state.json"  # each step's status, hash and seconds (:mod:`pedgm_kit.runstate`)
PAGE_FILE = "index.html"  # a folder's HTML page: the run report, the cohort QC page
PREPROCESS_JSON = "preprocess.json"  # notebook 01's results
INDEX_CSV = "index.csv"  # notebook 01's table of preprocessed scans (:func:`pedgm_kit.preprocess.index_row`)
REVIEW_CSV = "review.csv"  # the review log of the drafts
MANIFEST_FILE = "manifest.json"  # notebook 02's :class:`Manifest`
DATA_CREATION_JSON = "data_creation.json"  # notebook 02's results
SPLIT_TABLE_CSV = "split_table.csv"
SPLIT_COUNTS_PNG = "split_counts.png"
SCANS_FILE = "scans.json"  # per-scan records beside a data folder's arrays
AUGMENT_JSON = "augment.json"  # notebook 03's results
AUGMENT_PREVIEW_PNG = "augmentation_preview.png"
PLAN_FILE = "plan.json"  # the runner's :class:`TrainPlan`
WEIGHTS_FILE = "best.hdf5"  # a training run's selected weights
WEIGHTS_JSON = "best.json"  # their metadata (written beside them by :func:`pedgm_kit.model.save_legacy_weights`)
ONNX_FILE = "best.onnx"
SUMMARY_JSON = "summary.json"  # a training run's :class:`TrainSummary`
HISTORY_CSV = "history.csv"  # one row per epoch
BEST_EPOCH_JSON = "best_epoch.json"  # the best epoch so far (resume)
LEARNING_CURVE_PNG = "learning_curve.png"
RESULTS_JSON = "results.json"  # notebook 05's :class:`EvaluationResults`
METRICS_PREFIX = "metrics"  # notebook 05's metric tables: metrics_tidy.csv, ..., metrics.xlsx

#: Notebook 05's files in ``<run>/evaluation/``, by the key ``results.json`` lists them under.
EVALUATION_FILES: dict[str, str] = {
    "tidy": f"{METRICS_PREFIX}_tidy.csv", "scan": f"{METRICS_PREFIX}_scan.csv",
    "slice": f"{METRICS_PREFIX}_slice.csv", "summary": f"{METRICS_PREFIX}_summary.csv",
    "xlsx": f"{METRICS_PREFIX}.xlsx",
    "failures": "failures.csv", "stats": "stats.csv", "headline": "headline.csv", "groups": "groups.csv",
    "uncertainty_table": "uncertainty.csv", "per_fold": "per_fold_dsc.csv", "efficiency": "efficiency.csv",
    "efficiency_runs": "efficiency_runs.csv", "retest_areas_csv": "retest_areas.csv",
    "retest_cv": "retest_cv.csv", "retest_cv_pairs": "retest_cv_pairs.csv", "summary_md": "summary.md",
    "boxplots_slice": "boxplots_slice.png", "boxplots_scan": "boxplots_scan.png", "person_dice": "person_dice.png",
    "groups_forest": "groups_forest.png", "uncertainty": "uncertainty.png", "retest_areas": "retest_areas.png",
    "result_summary": "result_summary.png", "efficiency_png": "efficiency.png",
    "results": RESULTS_JSON,
}

#: Every file name of a run folder this module owns (a test checks no module writes one as a literal).
FILE_NAMES = frozenset({
    PARAMETERS_FILE, STATE_FILE, PAGE_FILE, PREPROCESS_JSON, INDEX_CSV, REVIEW_CSV, MANIFEST_FILE, DATA_CREATION_JSON,
    SPLIT_TABLE_CSV, SPLIT_COUNTS_PNG, SCANS_FILE, AUGMENT_JSON, AUGMENT_PREVIEW_PNG, PLAN_FILE, WEIGHTS_FILE,
    WEIGHTS_JSON, ONNX_FILE, SUMMARY_JSON, HISTORY_CSV, BEST_EPOCH_JSON, LEARNING_CURVE_PNG,
    *EVALUATION_FILES.values(),
})

# ---- folder names ---------------------------------------------------------------------------------
PREPROCESS_DIR, DATA_DIR, AUGMENT_DIR, TRAIN_DIR, EVALUATION_DIR = "preprocess", "data", "augment", "train", "evaluation"
PREPROCESSED_DIR, QC_DIR, DRAFTS_DIR, ARRAYS_DIR, FINAL_DIR = "preprocessed", "qc", "drafts", "data", "final"
SIMULATED_PREFIX = "simulated-"
PREDICTION_CACHE_DIR = "prediction-cache"  # a run's test-scan predictions, by content (:mod:`pedgm_kit.evaluate.cache`)
_FOLD, _PERSONS = "fold-", "persons-"
#: Stands for the fold number in a model path given to notebook 05 (``train/fold-{fold}/<variant>/best.hdf5``).
FOLD_PLACEHOLDER = "{fold}"


def fold_dir(folder: str | os.PathLike, fold: int | str) -> Path:
    """The folder of cross-validation fold ``fold`` (1-based) under ``folder``; ``folder`` itself for 0.

    ``fold`` may be :data:`FOLD_PLACEHOLDER`, for a path template filled in per fold.
    """
    if fold == FOLD_PLACEHOLDER:
        return Path(folder) / f"{_FOLD}{FOLD_PLACEHOLDER}"
    return Path(folder) / f"{_FOLD}{int(fold)}" if int(fold) else Path(folder)


def variant_dir(train_dir: str | os.PathLike, variant: str, *, fold: int | str = 0, persons: int = 0) -> Path:
    """A training run's folder: ``<train_dir>/[fold-<k>/][persons-<n>/]<variant>``."""
    folder = fold_dir(train_dir, fold)
    return (folder / f"{_PERSONS}{int(persons)}" if persons else folder) / variant


def plan_path(train_dir: str | os.PathLike) -> Path:
    """The :class:`TrainPlan` of a training folder: ``<train_dir>/plan.json``."""
    return Path(train_dir) / PLAN_FILE


def split_arrays(data_dir: str | os.PathLike, split: str) -> Path:
    """A split's arrays in a data folder: ``<data_dir>/<split>.npz``."""
    return Path(data_dir) / f"{split}.npz"


def evaluation_path(evaluation_dir: str | os.PathLike, key: str) -> Path:
    """Notebook 05's file ``key`` (a key of :data:`EVALUATION_FILES`) in the evaluation folder."""
    if key not in EVALUATION_FILES:
        raise KeyError(f"no evaluation file {key!r}; known: {', '.join(EVALUATION_FILES)}")
    return Path(evaluation_dir) / EVALUATION_FILES[key]


def fold_of(path: str | os.PathLike) -> int | None:
    """The fold of a path inside a fold folder (``.../fold-<k>/...``, the innermost), or None.

    For a weights file given by path (a model to package or describe); lists of runs come from
    :class:`TrainPlan` and :class:`Manifest`, not from this.
    """
    for part in reversed(Path(path).parts):
        tail = part.removeprefix(_FOLD)
        if part.startswith(_FOLD) and tail.isdigit():
            return int(tail)
    return None


def fold_folder(path: str | os.PathLike) -> Path | None:
    """The innermost ``fold-<k>`` folder containing ``path``, or None."""
    for parent in Path(path).parents:
        if fold_of(parent.name) is not None:
            return parent
    return None


def fold_members(variant: str | os.PathLike) -> list[Path]:
    """The fold weights of a cross-validated variant, sorted by fold.

    ``variant`` is either a packaged ensemble folder (``<final>/<variant>/fold-<k>/best.hdf5``) or the
    variant's name under a training folder (``<train>/fold-<k>/<variant>/best.hdf5``). The fold numbers
    come from :func:`fold_of`.
    """
    path = Path(variant)

    def key(p: Path) -> int:
        k = fold_of(p)
        return 10**6 if k is None else k

    found = sorted(path.glob(f"{_FOLD}*/{WEIGHTS_FILE}"), key=key) if path.is_dir() else []
    return found or sorted(path.parent.glob(f"{_FOLD}*/{path.name}/{WEIGHTS_FILE}"), key=key)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (``outputs/<run-id>/``).

    Examples
    --------
    >>> run = RunLayout("outputs/run-1")
    >>> run.manifest.as_posix()
    'outputs/run-1/data/manifest.json'
    >>> run.weights("pretrained_aug", fold=2).as_posix()
    'outputs/run-1/train/fold-2/pretrained_aug/best.hdf5'
    """

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    # the run itself
    @property
    def parameters(self) -> Path:
        return self.root / PARAMETERS_FILE

    @property
    def state(self) -> Path:
        return self.root / STATE_FILE

    @property
    def report(self) -> Path:
        return self.root / PAGE_FILE

    # 01
    @property
    def preprocess(self) -> Path:
        return self.root / PREPROCESS_DIR

    @property
    def preprocess_json(self) -> Path:
        return self.preprocess / PREPROCESS_JSON

    @property
    def preprocessed(self) -> Path:
        return self.preprocess / PREPROCESSED_DIR

    @property
    def index_csv(self) -> Path:
        return self.preprocessed / INDEX_CSV

    @property
    def qc(self) -> Path:
        """Notebook 01's QC montages."""
        return self.preprocess / QC_DIR

    @property
    def drafts(self) -> Path:
        """Notebook 01's draft masks and their review log."""
        return self.preprocess / DRAFTS_DIR

    def simulated(self, name: str) -> Path:
        """The SIMULATED copy of the dataset notebook 01 writes for shift ``name``."""
        return self.preprocess / f"{SIMULATED_PREFIX}{name}"

    # 02
    @property
    def data(self) -> Path:
        return self.root / DATA_DIR

    @property
    def arrays(self) -> Path:
        """The arrays folder (``data/data``; cross-validation: a ``fold-<k>`` folder per fold inside)."""
        return self.data / ARRAYS_DIR

    @property
    def manifest(self) -> Path:
        return self.data / MANIFEST_FILE

    @property
    def data_creation_json(self) -> Path:
        return self.data / DATA_CREATION_JSON

    @property
    def split_table(self) -> Path:
        return self.data / SPLIT_TABLE_CSV

    # 03
    @property
    def augment(self) -> Path:
        return self.root / AUGMENT_DIR

    @property
    def augment_json(self) -> Path:
        return self.augment / AUGMENT_JSON

    # 04
    @property
    def train(self) -> Path:
        return self.root / TRAIN_DIR

    @property
    def plan(self) -> Path:
        return plan_path(self.train)

    @property
    def final(self) -> Path:
        return self.train / FINAL_DIR

    def variant(self, variant: str, *, fold: int | str = 0, persons: int = 0) -> Path:
        return variant_dir(self.train, variant, fold=fold, persons=persons)

    def weights(self, variant: str, *, fold: int | str = 0, persons: int = 0) -> Path:
        return self.variant(variant, fold=fold, persons=persons) / WEIGHTS_FILE

    # 05
    @property
    def evaluation(self) -> Path:
        return self.root / EVALUATION_DIR

    @property
    def results(self) -> Path:
        return self.evaluation / RESULTS_JSON

    def evaluation_file(self, key: str) -> Path:
        return evaluation_path(self.evaluation, key)

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to the run folder, with forward slashes (a step's recorded output)."""
        return Path(path).relative_to(self.root).as_posix()


# ---- records --------------------------------------------------------------------------------------

@dataclass
class _Record:
    """A JSON record: typed fields, ``schema_version``, unknown keys kept in ``extra``."""

    what: ClassVar[str] = "record"
    required: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict:
        """The record as a JSON-ready dict: every field, then the keys kept in ``extra``."""
        out: dict[str, Any] = {"schema_version": self.schema_version}
        for f in dataclasses.fields(self):
            if f.name not in ("extra", "schema_version"):
                out[f.name] = _plain(getattr(self, f.name))
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_json(cls, data: Mapping):
        """The record of a parsed JSON object; a file without ``schema_version`` reads as version 0.

        Raises
        ------
        ValueError
            ``data`` is not an object, lacks a required key or is of a newer schema (the message
            follows the file's name: "has no 'splits'").
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"is not a JSON object (got {type(data).__name__})")
        missing = [k for k in cls.required if k not in data]
        if missing:
            raise ValueError(f"has no {', '.join(map(repr, missing))}")
        version = data.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"has schema_version {version!r}; this pedgm_kit reads up to {SCHEMA_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "schema_version"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "schema_version"}
        record = cls(**known, extra=extra)
        record.schema_version = version
        record.check()
        return record

    @classmethod
    def new(cls, data: Mapping):
        """A record of the current :data:`SCHEMA_VERSION` from a dict of its keys (what a writer holds)."""
        return cls.from_json({**data, "schema_version": SCHEMA_VERSION})

    def check(self) -> None:
        """Raise ValueError ("has ...") when a field has the wrong shape (records override)."""

    @classmethod
    def read(cls, path: str | os.PathLike):
        """Read and check a record file; a one-line :class:`InputFileError` names the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"No such file or no access: '{path}' ({cls.what})")
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputFileError(f"Cannot read {cls.what} '{path}': {str(err).splitlines()[0]}") from None
        except (ValueError, TypeError) as err:
            raise InputFileError(f"{cls.what.capitalize()} '{path}' {err}") from None

    def write(self, path: str | os.PathLike) -> Path:
        """Write the record atomically (:func:`pedgm_kit.io.write_json`); returns the path."""
        from .io import write_json

        return write_json(self.to_json(), path)


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_json() if hasattr(value, "to_json") else dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value




@dataclass
class Manifest(_Record):
    """Notebook 02's ``manifest.json``: the split(s), counts and the sha256 of every file used.

    ``splits`` maps ``train``/``val``/``test`` to scan ids (the first fold under cross-validation);
    ``folds`` is the list of every fold's splits, or None. The folds are enumerated from here
    (:meth:`fold_numbers`), never from folder names.
    """

    what: ClassVar[str] = "split manifest"
    required: ClassVar[tuple[str, ...]] = ("splits",)

    splits: dict[str, list[str]] = field(default_factory=dict)
    folds: list[dict[str, list[str]]] | None = None
    notebook: str = "02_data_creation"
    parameters: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    fold_counts: list[dict] | None = None
    data_dir: str = ""
    arrays: dict = field(default_factory=dict)
    centring: dict[str, str] = field(default_factory=dict)
    preprocessed: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        if not isinstance(self.splits, Mapping) or not isinstance(self.splits.get("test"), list):
            raise ValueError("has no 'splits' with a 'test' list of scan ids")
        if self.folds is not None and (not isinstance(self.folds, list) or not all(
                isinstance(f, Mapping) and isinstance(f.get("test"), list) for f in self.folds)):
            raise ValueError("has 'folds' that are not a list of splits with a 'test' list each")

    @classmethod
    def read(cls, path: str | os.PathLike) -> Manifest:
        if not Path(path).is_file():
            raise InputFileError(f"No such file or no access: '{path}' (split manifest; run notebook 02)")
        return super().read(path)

    def fold_numbers(self) -> list[int]:
        """The folds of the data: ``[1, ..., k]`` under cross-validation, else ``[0]`` (one split)."""
        return list(range(1, len(self.folds) + 1)) if self.folds else [0]

    def fold_splits(self) -> Iterator[tuple[int, dict[str, list[str]]]]:
        """``(fold, splits)`` for every fold (fold 0 and :attr:`splits` without cross-validation)."""
        if self.folds:
            yield from enumerate(self.folds, start=1)
        else:
            yield 0, self.splits

    def fold_tests(self) -> list[list[str]] | None:
        """Every fold's test scans (cross-validation), or None (one split)."""
        return [list(f["test"]) for f in self.folds] if self.folds else None

    def test_scans(self) -> list[str]:
        """Every scan tested once: each fold's test scans in fold order, or the one split's."""
        tests = self.fold_tests()
        return [s for t in tests for s in t] if tests else list(self.splits["test"])


@dataclass
class TrainSummary(_Record):
    """A training run's ``summary.json`` (:func:`pedgm_kit.train.train_variant`).

    The fields are those read outside training (report, evaluation, model cards, ensembles); every
    other key of the file is kept in ``extra``.
    """

    what: ClassVar[str] = "training summary"
    required: ClassVar[tuple[str, ...]] = ("variant",)

    variant: str = ""
    config: dict = field(default_factory=dict)
    train_persons: list[str] = field(default_factory=list)
    val_persons: list[str] = field(default_factory=list)
    test_persons: list[str] = field(default_factory=list)
    epochs_run: int | None = None
    best_epoch: int | None = None
    best_val_dice: float | None = None
    threshold: float | None = None
    threshold_rule: str | None = None
    test_dice: float | None = None
    baseline_test_dice: float | None = None
    train_slices_per_s: float | None = None
    seconds: float | None = None
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def check(self) -> None:
        if not isinstance(self.variant, str) or not self.variant:
            raise ValueError("has no variant name ('variant' must be a non-empty string)")


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a :class:`TrainPlan`: fold (0: no cross-validation), variant, persons (0: all)."""

    fold: int
    variant: str
    persons: int = 0

    def folder(self, train_dir: str | os.PathLike) -> Path:
        """The run's folder under the training folder."""
        return variant_dir(train_dir, self.variant, fold=self.fold, persons=self.persons)

    def to_json(self) -> dict:
        return {"fold": self.fold, "variant": self.variant, "persons": self.persons}


@dataclass
class TrainPlan(_Record):
    """``train/plan.json``: every training run of a run folder, written by the runner before training.

    Readers (the report, the data-efficiency curve) enumerate runs, folds and variants from here.
    """

    what: ClassVar[str] = "training plan"
    required: ClassVar[tuple[str, ...]] = ("runs",)

    runs: list[PlannedRun] = field(default_factory=list)
    folds: list[int] = field(default_factory=lambda: [0])
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        self.runs = [r if isinstance(r, PlannedRun) else PlannedRun(int(r["fold"]), str(r["variant"]),
                                                                      int(r.get("persons", 0)))
                     for r in self.runs]
        self.folds = [int(k) for k in self.folds]

    @classmethod
    def of(cls, train_dir: str | os.PathLike) -> TrainPlan:
        """The plan of a training folder: its ``plan.json``.

        A folder trained before plans were recorded has none: its plan is rebuilt once here from where
        its summaries lie (``[fold-<k>/][persons-<n>/]<variant>/summary.json``, ``final/`` excluded), the
        only place that reads those folder names back.
        """
        path = plan_path(train_dir)
        if path.is_file():
            return cls.read(path)
        runs = []
        for summary in sorted(Path(train_dir).glob(f"**/{SUMMARY_JSON}")):
            rel = summary.parent.relative_to(train_dir)
            if not rel.parts or rel.parts[0] == FINAL_DIR:
                continue
            persons = [p.removeprefix(_PERSONS) for p in rel.parts if p.startswith(_PERSONS)]
            runs.append(PlannedRun(fold_of(rel) or 0, rel.name, int(persons[0]) if persons and persons[0].isdigit() else 0))
        return cls(runs=runs, folds=sorted({r.fold for r in runs}) or [0])

    def check(self) -> None:
        unknown = sorted({r.fold for r in self.runs} - set(self.folds))
        if unknown:
            raise ValueError(f"has runs of folds {unknown} it does not list ({self.folds})")

    def variants(self) -> list[str]:
        """The variants trained, in plan order."""
        return list(dict.fromkeys(r.variant for r in self.runs))

    def curve_variants(self) -> list[str]:
        """The variants trained on person subsets too (the data-efficiency curve)."""
        return list(dict.fromkeys(r.variant for r in self.runs if r.persons))

    def summaries(self, train_dir: str | os.PathLike) -> Iterator[tuple[PlannedRun, TrainSummary]]:
        """``(run, summary)`` for every planned run that wrote its summary, in plan order."""
        for run in self.runs:
            path = run.folder(train_dir) / SUMMARY_JSON
            if path.is_file():
                yield run, TrainSummary.read(path)


@dataclass
class EvaluationResults(_Record):
    """Notebook 05's ``results.json`` (:func:`pedgm_kit.evaluate.results_record`): the keys the report reads.

    ``files`` maps keys of :data:`EVALUATION_FILES` to paths relative to the evaluation folder.
    """

    what: ClassVar[str] = "evaluation results"

    scope: str = ""
    parameters: dict = field(default_factory=dict)
    shift: str | None = None
    folds: int = 0
    fold_of_person: dict[str, int] = field(default_factory=dict)
    scans: list[str] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    failure_penalty_mm: float | None = None
    files: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
