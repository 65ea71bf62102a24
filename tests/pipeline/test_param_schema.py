"""One parameter schema (pedgm_kit.schema): notebooks, parameter files, TrainConfig and the CLI agree with it."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pedgm_kit import schema
from pedgm_kit.cli import get_parser
from pedgm_kit.exceptions import ParameterError
from pedgm_kit.params import check_section, section_parameters
from pedgm_kit.schema import SCHEMA, SECTIONS, config_parameters, read_cell, render_cell, write_cells
from pedgm_kit.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_SECTIONS = [(s, n) for s, n in SECTIONS.items() if n]


@pytest.mark.parametrize(("section", "notebook"), NOTEBOOK_SECTIONS)
def test_each_notebook_parameters_cell_is_the_schema(section, notebook):
    """Names, order, literal values (= the schema's defaults) and comments: the cell is rendered from the schema."""
    source = read_cell(REPO / "notebooks" / notebook)
    assigned = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name), ast.unparse(node)
        assigned[node.targets[0].id] = ast.literal_eval(node.value)
    expected = {name: p.default for name, p in section_parameters(section).items()}
    assert assigned == expected
    assert list(assigned) == list(expected)
    assert source == render_cell(section), f"run `python -m pedgm_kit.schema` to rewrite {notebook}'s parameters cell"


def test_a_demo_size_default_names_the_study_value():
    """Notebook 04's CPU demo sizes are recorded as such; TrainConfig takes the study's values."""
    train = SCHEMA["train"]
    assert (train["epochs"].default, train["epochs"].library_default) == (3, 100)
    assert (train["max_slices"].default, train["max_slices"].library_default) == (24, 0)
    cell = render_cell("train")
    assert "epochs = 3  # maximum epochs; CPU demo size (the original study's and TrainConfig's default: 100)" in cell


def test_the_shipped_parameter_files_use_the_recorded_sizes():
    """gpu_full.yaml trains at the study's sizes (TrainConfig's defaults), demo.yaml at the notebook's."""
    from pedgm_kit.params import load_params

    full = load_params(REPO / "parameters" / "gpu_full.yaml")["train"]
    demo = load_params(REPO / "parameters" / "demo.yaml")["train"]
    for name in ("epochs", "max_slices"):
        assert full[name] == getattr(TrainConfig(), name) == SCHEMA["train"][name].library_default
        assert demo[name] == SCHEMA["train"][name].default
    assert all(full[p.name] == p.library_default for p in config_parameters() if p.name in full)


def test_train_config_fields_and_defaults_are_the_schema():
    fields = dataclasses.fields(TrainConfig)
    assert [f.name for f in fields] == [p.name for p in config_parameters()] == TrainConfig.names()
    config = TrainConfig()
    for p in config_parameters():
        assert getattr(config, p.name) == p.library_default, p.name
        assert type(getattr(config, p.name)) is p.type, p.name
        assert f"    {p.name} : " in TrainConfig.__doc__, p.name  # documented from the schema
    assert TrainConfig().augmentation is not TrainConfig().augmentation  # a fresh mapping each time
    # every config field but ``augmentation`` is a line of notebook 04's parameters cell
    assert {p.name for p in config_parameters() if p.notebook} <= set(section_parameters("train"))


def test_train_config_from_notebook_parameters():
    """Notebook 04's values (its globals) make the config; smoke replaces epochs and max_slices."""
    notebook = {name: p.default for name, p in section_parameters("train").items()} | {"Path": Path}
    config = TrainConfig.from_parameters(notebook)
    assert (config.epochs, config.max_slices) == (3, 24)  # the notebook's demo size, not the study's
    smoke = TrainConfig.from_parameters({**notebook, "smoke": True, "smoke_epochs": 1, "smoke_max_slices": 5})
    assert (smoke.epochs, smoke.max_slices) == (1, 5)
    with pytest.raises(ParameterError, match=r"invalid training parameters: smoke_epochs=0 \(must be a positive integer\)"):
        TrainConfig.from_parameters({**notebook, "smoke_epochs": 0})


def _actions(parser: argparse.ArgumentParser, command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return {option: action for action in sub.choices[command]._actions for option in action.option_strings}  # noqa: SLF001


def test_cli_choices_are_the_schema():
    parser = get_parser()
    segment, export = _actions(parser, "segment"), _actions(parser, "export")
    assert tuple(segment["--engine"].choices) == schema.ENGINES
    assert tuple(segment["--padding"].choices) == schema.PADDINGS
    assert tuple(segment["--uncertainty"].choices) == schema.UNCERTAINTY_METHODS
    assert tuple(export["--format"].choices) == schema.EXPORT_FORMATS
    # the API's own choices are the same objects (one tuple each)
    from pedgm_kit import segment
    from pedgm_kit.datasets import LAYOUTS

    assert segment.ENGINES is schema.ENGINES and segment.PADDINGS is schema.PADDINGS
    assert segment.UNCERTAINTY_METHODS is schema.UNCERTAINTY_METHODS
    assert tuple(LAYOUTS) == schema.LAYOUTS
    assert set(SCHEMA["preprocess"]["uncertainty"].choices) == {*schema.UNCERTAINTY_METHODS, ""}
    assert SCHEMA["train"]["threshold"].choices is schema.THRESHOLD_RULES


def test_no_hand_written_choice_message_in_the_package():
    """``X must be one of ...`` is written once, by io.check_choice."""
    found = [f"{path.relative_to(REPO)}:{n}" for path in sorted((REPO / "pedgm_kit").rglob("*.py"))
             if path.name != "io.py"
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "must be one of" in line]
    assert found == []


def test_rewriting_changes_only_the_parameters_cell(tmp_path):
    for _, name in NOTEBOOK_SECTIONS:
        shutil.copy(REPO / "notebooks" / name, tmp_path / name)
    path = tmp_path / "04_train.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = ["epochs = 7  # edited by hand\n"]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert write_cells(tmp_path) == [path]
    rewritten = json.loads(path.read_text(encoding="utf-8"))
    assert read_cell(path) == render_cell("train")
    assert [c for c in rewritten["cells"] if c is not cell and "parameters" not in c["metadata"].get("tags", [])] == \
        [c for c in notebook["cells"] if "parameters" not in c["metadata"].get("tags", [])]
    assert write_cells(tmp_path) == []  # nothing left to change


@pytest.mark.parametrize(("values", "message"), [
    ({"warmup_epochs": 3}, "'train': warmup_epochs must be 0 or fewer than the epochs"),  # default epochs 3
    ({"smoke": True, "smoke_epochs": 1, "warmup_epochs": 1}, "warmup_epochs must be 0 or fewer"),
    ({"adabn": True, "pretrained": False}, "adabn and reinit_head adapt pretrained weights"),
    ({"loss": "bce"}, "'train.loss' must be 'dice' or 'dice_bce', got 'bce'"),
])
def test_parameter_files_check_what_train_config_checks(values, message):
    problems = check_section("train", values, where="p.yaml")
    assert any(message in p for p in problems), problems
    with pytest.raises(ParameterError, match="invalid training parameters"):
        TrainConfig.from_parameters(values)


_TRAIN = {name: p for name, p in section_parameters("train").items()}
_WRONG = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**33), st.floats(), st.text(max_size=4),
                   st.lists(st.integers(0, 3), max_size=2))


def _values(p: schema.Param):
    default = p.default
    if isinstance(default, bool):
        good = st.booleans()
    elif isinstance(default, int):
        good = st.integers(-2, 12) | st.sampled_from([100, 2**32 - 1, 2**32])
    elif isinstance(default, float):
        good = st.floats(-0.5, 12) | st.sampled_from([0.0, 1e-3, 9.99, 10.0])
    elif isinstance(default, str):
        good = st.sampled_from(p.choices or (default,)) | st.text(max_size=6)
    else:
        good = st.just(default)
    return st.one_of(good, good, good, _WRONG)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({}, optional={name: _values(p) for name, p in _TRAIN.items()}))
def test_parameter_file_and_train_config_accept_and_refuse_the_same_values(values):
    """A ``train`` section the parameter-file check accepts makes a TrainConfig; one it refuses does not."""
    problems = check_section("train", values, where="p.yaml")
    try:
        config = TrainConfig.from_parameters(values)
    except ParameterError as err:
        assert problems, (values, err)
        message = str(err)
        assert "\n" not in message
        for problem in problems:  # the same keys named by both
            key = re.match(r"'train\.(\w+)'", problem)
            assert key is None or f"{key.group(1)}=" in message, (problem, message)
        return
    assert problems == [], (values, config)
    assert all(getattr(config, k) == v for k, v in values.items() if k in TrainConfig.names()
               and not (values.get("smoke") is True and k in ("epochs", "max_slices")))
