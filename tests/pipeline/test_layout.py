"""The run layout (pedgm_kit.layout): records round-trip, folds and variants come from records, and no
module or notebook writes one of the layout's file names itself."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pedgm_kit import layout
from pedgm_kit.exceptions import InputFileError
from pedgm_kit.layout import (
    EvaluationResults,
    Manifest,
    PlannedRun,
    RunLayout,
    TrainPlan,
    TrainSummary,
    fold_of,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pedgm_kit"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))

ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
scan_lists = st.lists(ids, max_size=5)
splits = st.fixed_dictionaries({"train": scan_lists, "val": scan_lists, "test": scan_lists})
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=10),
                      st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ids, inner, max_size=3),
                           max_leaves=8)
extras = st.dictionaries(ids.map(lambda k: f"x_{k}"), json_values, max_size=3)


def _roundtrip(record):
    """to_json -> JSON text -> from_json gives the same record."""
    again = type(record).from_json(json.loads(json.dumps(record.to_json())))
    assert again == record
    assert again.to_json() == record.to_json()
    return again


@settings(max_examples=60, deadline=None)
@given(splits=splits, folds=st.none() | st.lists(splits, min_size=2, max_size=4), extra=extras,
       centring=st.dictionaries(ids, st.sampled_from(["model", "cord mask", "gm mask"]), max_size=3))
def test_manifest_roundtrips(splits, folds, extra, centring):
    record = Manifest.new({"splits": splits, "folds": folds, "centring": centring, "parameters": {"seed": 0}, **extra})
    again = _roundtrip(record)
    assert again.schema_version == layout.SCHEMA_VERSION
    assert again.extra == extra  # keys the record does not know survive a rewrite
    assert again.fold_numbers() == (list(range(1, len(folds) + 1)) if folds else [0])
    assert again.test_scans() == ([s for f in folds for s in f["test"]] if folds else splits["test"])


@settings(max_examples=60, deadline=None)
@given(variant=ids, persons=scan_lists, dice=st.none() | st.floats(0, 1), epochs=st.none() | st.integers(0, 500),
       extra=extras)
def test_summary_roundtrips(variant, persons, dice, epochs, extra):
    record = TrainSummary.new({"variant": variant, "train_persons": persons, "test_dice": dice, "epochs_run": epochs,
                               **extra})
    assert _roundtrip(record).extra == extra


@settings(max_examples=60, deadline=None)
@given(folds=st.integers(0, 5), variants=st.lists(ids, min_size=1, max_size=4, unique=True),
       sizes=st.lists(st.integers(1, 9), max_size=3, unique=True))
def test_plan_roundtrips(folds, variants, sizes):
    numbers = list(range(1, folds + 1)) or [0]
    runs = [PlannedRun(k, v, n) for k in numbers for n in [0, *sizes] for v in variants]
    plan = _roundtrip(TrainPlan(runs=runs, folds=numbers))
    assert plan.variants() == variants
    assert plan.curve_variants() == (variants if sizes else [])


@settings(max_examples=30, deadline=None)
@given(scans=scan_lists, folds=st.integers(0, 5), extra=extras)
def test_results_roundtrip(scans, folds, extra):
    _roundtrip(EvaluationResults.new({"scans": scans, "folds": folds, "files": {"stats": "stats.csv"}, **extra}))


def test_old_records_read_as_version_0(tmp_path):
    """A manifest written before schema_version existed still reads, with its keys."""
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"notebook": "02_data_creation", "splits": {"train": ["a"], "val": [], "test": ["b"]},
                                "folds": None, "counts": {}}))
    manifest = Manifest.read(path)
    assert manifest.schema_version == 0 and manifest.test_scans() == ["b"]


@pytest.mark.parametrize(("text", "match"), [
    ("{", "Cannot read split manifest"),
    ("[]", "is not a JSON object"),
    ('{"splits": {"train": []}}', "has no 'splits' with a 'test' list"),
    ('{"splits": {"test": []}, "folds": [{"train": []}]}', "'folds' that are not a list of splits"),
    ('{"splits": {"test": []}, "schema_version": 99}', "schema_version 99"),
])
def test_bad_manifest_is_one_line_naming_the_file(tmp_path, text, match):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(InputFileError, match=match) as err:
        Manifest.read(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_record_names_the_file(tmp_path):
    with pytest.raises(InputFileError, match="No such file or no access: .*summary.json"):
        TrainSummary.read(tmp_path / "summary.json")


def test_run_layout_paths():
    run = RunLayout("out/run-1")
    assert run.relative(run.manifest) == "data/manifest.json"
    assert run.relative(run.index_csv) == "preprocess/preprocessed/index.csv"
    assert run.relative(run.weights("scratch_aug", fold=3, persons=2)) == "train/fold-3/persons-2/scratch_aug/best.hdf5"
    assert run.relative(run.weights("scratch_aug")) == "train/scratch_aug/best.hdf5"
    assert run.relative(run.evaluation_file("stats")) == "evaluation/stats.csv"
    assert layout.fold_dir("t", layout.FOLD_PLACEHOLDER).as_posix() == "t/fold-{fold}"
    assert fold_of("train/fold-12/x/best.hdf5") == 12 and fold_of("train/x/best.hdf5") is None
    with pytest.raises(KeyError, match="no evaluation file"):
        run.evaluation_file("nope")


def _write_summary(folder: Path, variant: str, **values) -> None:
    folder.mkdir(parents=True)
    TrainSummary.new({"variant": variant, **values}).write(folder / layout.SUMMARY_JSON)


def test_folds_and_variants_come_from_the_plan(tmp_path):
    """collect_curve and the report's table list the plan's runs; a stray fold folder is not read."""
    from pedgm_kit.evaluate import collect_curve
    from pedgm_kit.report import _training_table

    run = RunLayout(tmp_path / "run")
    plan = TrainPlan(runs=[PlannedRun(k, v, n) for k in (1, 2) for v, n in (("a", 0), ("a", 1), ("b", 0))],
                     folds=[1, 2])
    run.train.mkdir(parents=True)
    plan.write(run.plan)
    for r in plan.runs:
        _write_summary(r.folder(run.train), r.variant, test_dice=0.5 + r.fold / 10, train_persons=["p"] * (r.persons or 3),
                       baseline_test_dice=0.4)
    _write_summary(run.variant("a", fold=9, persons=1), "a", test_dice=0.0)  # not in the plan
    curve = collect_curve(run.train)
    assert sorted(curve["fold"].unique()) == [1, 2]
    assert set(curve["variant"]) == {"a"}  # "b" has no subset runs: not part of the curve
    assert sorted(curve["subset"]) == ["1", "1", "all", "all"]
    table = _training_table(run.root)
    assert len(table) == len(plan.runs) and set(table["fold"]) == {"1", "2"}


def test_a_run_without_plan_is_rebuilt_once(tmp_path):
    """Runs trained before plan.json existed: the plan is rebuilt from where the summaries lie."""
    train = tmp_path / "train"
    _write_summary(layout.variant_dir(train, "a", fold=1, persons=2), "a")
    _write_summary(layout.variant_dir(train, "a", fold=1), "a")
    _write_summary(train / layout.FINAL_DIR / "a" / "fold-1", "a")  # a packaged copy, not a run
    plan = TrainPlan.of(train)
    assert sorted(plan.runs, key=lambda r: r.persons) == [PlannedRun(1, "a", 0), PlannedRun(1, "a", 2)]
    assert plan.folds == [1]


def test_pipeline_plan_matches_its_steps(tmp_path):
    """The runner's plan record lists exactly the training steps it runs."""
    from pedgm_kit.runner import pipeline_steps, plan_record, training_plan

    params = {"data": {"cv_folds": 2}, "pipeline": {"variants": ["pretrained_noaug"], "adapted_variant": False,
                                                    "train_persons": [1, "all"]}}
    run = RunLayout(tmp_path)
    plan = plan_record(training_plan(params, data_dir=run.arrays, train_dir=run.train), folds=2)
    trained = [s.name for s in pipeline_steps(params, run.root) if s.training]
    assert trained == [run.relative(r.folder(run.train)) for r in plan.runs]
    assert plan.folds == [1, 2]


# ---- no file name of the layout written anywhere else ------------------------------------------------

def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def layout_literals(source: str) -> list[tuple[int, str]]:
    """(line, string) of every string constant (docstrings excepted) that is, or ends in, a layout file name."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip and (
                node.value in layout.FILE_NAMES or any(node.value.endswith("/" + n) for n in layout.FILE_NAMES)):
            hits.append((node.lineno, node.value))
    return hits


def test_the_literal_check_sees_a_file_name():
    source = 'def f(run):\n    """Reads summary.json."""\n    return run / "summary.json", f"{run}/best.hdf5"\n'
    assert layout_literals(source) == [(3, "summary.json"), (3, "/best.hdf5")]


#: layout.py itself; schema.py holds the notebooks' parameter defaults, plain literals as in the parameters cells
_OWN_LITERALS = {"layout.py", "schema.py"}


def test_no_module_writes_a_layout_file_name():
    found = [f"{path.relative_to(ROOT)}:{line}: {value!r}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).as_posix() not in _OWN_LITERALS
             for line, value in layout_literals(path.read_text(encoding="utf-8"))]
    assert found == [], "use pedgm_kit.layout instead of:\n" + "\n".join(found)


def _code_cells(notebook: Path):
    for i, cell in enumerate(json.loads(notebook.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
            yield i, "".join(cell["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_writes_a_layout_file_name(notebook):
    """Below the parameters cell, paths come from pedgm_kit.layout (the parameters cell holds plain literals)."""
    found = [f"cell {i} line {line}: {value!r}" for i, source in _code_cells(notebook)
             for line, value in layout_literals(source)]
    assert found == [], f"{notebook.name}: use pedgm_kit.layout instead of:\n" + "\n".join(found)


def test_the_plan_is_written_once_and_left_alone_when_unchanged(tmp_path):
    """pedgm run --resume touches nothing it need not: an unchanged plan.json is not rewritten."""
    import os

    from pedgm_kit.runner import _write_plan, training_plan

    params = {"data": {"cv_folds": 2}, "pipeline": {"variants": ["scratch_noaug"], "adapted_variant": False}}
    run = RunLayout(tmp_path)
    _write_plan(params, training_plan(params, data_dir=run.arrays, train_dir=run.train))
    assert TrainPlan.read(run.plan).runs == [PlannedRun(1, "scratch_noaug"), PlannedRun(2, "scratch_noaug")]
    os.utime(run.plan, (1, 1))
    _write_plan(params, training_plan(params, data_dir=run.arrays, train_dir=run.train))
    assert run.plan.stat().st_mtime == 1
    params["pipeline"]["variants"].append("scratch_aug")
    _write_plan(params, training_plan(params, data_dir=run.arrays, train_dir=run.train))
    assert TrainPlan.read(run.plan).variants() == ["scratch_noaug", "scratch_aug"]
