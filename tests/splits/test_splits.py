"""Tests of pedgm_kit.splits: the original study's split sheet, automatic person-grouped splits."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import require_shared

from pedgm_kit.datasets import DatasetIndex, discover_bids, read_id_list
from pedgm_kit.exceptions import InputFileError, PedgmError
from pedgm_kit.splits import (
    auto_split,
    check_person_grouping,
    plot_split_counts,
    read_level_sheet,
    read_split_sheet,
    split_table,
)

REPO = Path(__file__).resolve().parents[2]
SEED_REFERENCE = REPO.parent / "shared" / "seed-reference"

# docs/design.md §2, "The original split"
EXPECTED = {
    "train": (
        "140 162 162_second 172 172_second 166_second 195 21 106 208 205 237 88 93 61 113 "
        "92_second 114 143 163 153 90 125 105 175 144 58 196 102 235 197 207 191 124 189 226 "
        "157 194 180 210 187"
    ).split(),
    "val": "179_second 199 82 142 115 135 247 127 161 55 181 244 150".split(),
    "test": "173_second 86 53 70 56 160 116 52 155 174 169 148 201 112".split(),
}

# the gm-challenge sample in miniature: 6 persons, 8 scans, 5 sites
TINY = [
    ("sub-10062Ses1", "sub-10062", "CEITEC", 20),
    ("sub-10062Ses2", "sub-10062", "CEITEC", 20),
    ("sub-9418", "sub-9418", "UCL", 17),
    ("sub-9584", "sub-9584", "NWU", 17),
    ("sub-9604", "sub-9604", "Philips", 20),
    ("sub-9669", "sub-9669", "Juntendo", 15),
    ("sub-9709Ses1", "sub-9709", "Milan", 20),
    ("sub-9709Ses2", "sub-9709", "Milan", 20),
]


# ------------------------------------------------------------------------------------------
# helpers and fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_reference() -> Path:
    require_shared(SEED_REFERENCE / "Subject_ID_Level_Split.xlsx", "seed reference split sheet")
    return SEED_REFERENCE


@pytest.fixture()
def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [(f"{sub}_run-1", person, site) for sub, person, site, _ in TINY],
        columns=["scan_id", "person_id", "Site"],
    )


@pytest.fixture()
def tiny_index(tmp_path) -> DatasetIndex:
    """A synthetic BIDS dataset shaped like the gm-challenge sample (tiny in-plane size)."""
    root = tmp_path / "bids"
    rows = ["participant_id\tSite"]
    for subject, _, site, n_slices in TINY:
        rows.append(f"{subject}\t{site}")
        stem = f"{subject}_run-1_T2starw"
        anat = root / subject / "anat"
        labels = root / "derivatives" / "labels" / subject / "anat"
        anat.mkdir(parents=True)
        labels.mkdir(parents=True)
        nib.save(nib.Nifti1Image(np.ones((4, 4, n_slices), np.float32), np.eye(4)),
                 anat / f"{stem}.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros((4, 4, n_slices), np.uint8), np.eye(4)),
                 labels / f"{stem}_gmseg-manual.nii.gz")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return discover_bids(root, cord_suffix=None)


def _regions_frame(n_per_region: int = 10) -> pd.DataFrame:
    rows = []
    for region in ("cervical", "upper_thoracic", "lower_thoracic"):
        for i in range(n_per_region):
            rows.append((f"{region}-{i}", f"{region}-{i}", region))
    return pd.DataFrame(rows, columns=["scan_id", "person_id", "region"])


def _assignment(splits: dict[str, list[str]]) -> dict[str, str]:
    return {scan: name for name, scans in splits.items() for scan in scans}


# ------------------------------------------------------------------------------------------
# the original study's split sheet
# ------------------------------------------------------------------------------------------


def test_seed_sheet_reproduces_the_original_split(seed_reference):
    splits = read_split_sheet(
        seed_reference / "Subject_ID_Level_Split.xlsx",
        ids_file=seed_reference / "Controls.txt",
        second_ids_file=seed_reference / "Controls_second.txt",
    )
    assert list(splits) == ["train", "val", "test"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 41, "val": 13, "test": 14}
    for name in EXPECTED:
        assert len(set(splits[name])) == len(splits[name])
        assert set(splits[name]) == set(EXPECTED[name]), name


def test_seed_sheet_excludes_id_37_and_nothing_else(seed_reference):
    splits = read_split_sheet(
        seed_reference / "Subject_ID_Level_Split.xlsx",
        ids_file=seed_reference / "Controls.txt",
        second_ids_file=seed_reference / "Controls_second.txt",
    )
    assigned = {scan for scans in splits.values() for scan in scans}
    assert "37" not in assigned and "37_second" not in assigned
    every_scan = set(read_id_list(seed_reference / "Controls.txt")) | {
        f"{i}_second" for i in read_id_list(seed_reference / "Controls_second.txt")}
    assert every_scan - assigned == {"37"}
    assert assigned <= every_scan
    check_person_grouping(splits, lambda scan: scan.removesuffix("_second"))


def test_seed_sheet_without_id_files_cannot_know_second_only_persons(seed_reference):
    splits = read_split_sheet(seed_reference / "Subject_ID_Level_Split.xlsx")
    assert "92" in splits["train"] and "92_second" not in splits["train"]
    assert {"162", "162_second"} <= set(splits["train"])


def test_seed_level_sheet(seed_reference):
    levels = read_level_sheet(seed_reference / "Subject_ID_Level_Split.xlsx")
    assert len(levels) == 66 and levels["person_id"].is_unique
    row = levels.set_index("person_id").loc["92"]
    assert row["levels"] == "UT, MT" and row["main_region"] == "UT"
    assert row["UT"] and row["MT"] and not row["UC"]
    assert "37" not in set(levels["person_id"])


def _write_sheet(path: Path, columns: dict[str, list]) -> Path:
    n = max(len(v) for v in columns.values())
    frame = pd.DataFrame({k: v + [None] * (n - len(v)) for k, v in columns.items()})
    frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


@pytest.fixture()
def id_files(tmp_path) -> tuple[Path, Path]:
    first = tmp_path / "Controls.txt"
    second = tmp_path / "Controls_second.txt"
    first.write_text("1\n2\n3\n4\n5\n")
    second.write_text("2\n9\n")
    return first, second


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_text_sheets(tmp_path, id_files, suffix):
    sheet = _write_sheet(tmp_path / f"split{suffix}", {
        "Training": [1, 2, 2], "Val": [3, 9], "Testing": [4], "Notes": ["x"]})
    splits = read_split_sheet(sheet, ids_file=id_files[0], second_ids_file=id_files[1])
    assert splits == {"train": ["1", "2", "2_second"], "val": ["3", "9_second"], "test": ["4"]}


def test_sheet_custom_columns_and_explicit_second_ids(tmp_path, id_files):
    sheet = _write_sheet(tmp_path / "s.tsv", {"tr": ["2_second", "1"], "te": ["3"]})
    splits = read_split_sheet(
        sheet, columns={"train": "tr", "test": "te"}, ids_file=id_files[0],
        second_ids_file=id_files[1])
    assert splits == {"train": ["2_second", "1"], "test": ["3"]}


@pytest.mark.parametrize(
    "columns, match",
    [
        ({"Training": [1, 1], "Val": [3], "Testing": [4]},
         r"ID '1' is listed 2 times in column 'Training' .* has 1 scan\(s\): 1"),
        ({"Training": [2, 2, 2], "Val": [3], "Testing": [4]},
         r"ID '2' is listed 3 times .* 2 scan\(s\): 2, 2_second"),
        ({"Training": [7], "Val": [3], "Testing": [4]},
         r"ID '7' in column 'Training' .* is in neither .*Controls\.txt nor .*Controls_second"),
        ({"Training": [2], "Val": [2], "Testing": [4]},
         r"ID '2' .* listed in two split columns: 'Training' and 'Val'"),
        ({"Training": ["3_second"], "Val": [1], "Testing": [4]},
         r"'3_second' in column 'Training' .* not in the second-scan list"),
    ],
)
def test_sheet_errors_name_the_id(tmp_path, id_files, columns, match):
    sheet = _write_sheet(tmp_path / "s.csv", columns)
    with pytest.raises(PedgmError, match=match):
        read_split_sheet(sheet, ids_file=id_files[0], second_ids_file=id_files[1])


def test_excel_sheet_numeric_cells(tmp_path, id_files):
    path = tmp_path / "split.xlsx"
    frame = pd.DataFrame({"Training": [1.0, 2.0, 2.0], "Val": [3.0, None, None],
                          "Testing": [9.0, None, None]})
    frame.to_excel(path, sheet_name="mine", index=False)
    splits = read_split_sheet(path, sheet="mine", ids_file=id_files[0],
                              second_ids_file=id_files[1])
    assert splits == {"train": ["1", "2", "2_second"], "val": ["3"], "test": ["9_second"]}
    pd.DataFrame({"Training": [1.5], "Val": [3], "Testing": [4]}).to_excel(
        path, sheet_name="mine", index=False)
    with pytest.raises(PedgmError, match=r"subject ID 1\.5 is not a whole number"):
        read_split_sheet(path, sheet="mine")


def test_sheet_missing_column_sheet_and_file(tmp_path, seed_reference):
    sheet = _write_sheet(tmp_path / "s.tsv", {"Training": [1], "Val": [2]})
    with pytest.raises(InputFileError, match=r"split column 'Testing' \(for 'test'\) not found"):
        read_split_sheet(sheet)
    with pytest.raises(InputFileError, match=r"sheet 'Nope' not found .*DTI_Normal_Level"):
        read_split_sheet(seed_reference / "Subject_ID_Level_Split.xlsx", sheet="Nope")
    with pytest.raises(InputFileError, match=r"absent\.xlsx does not exist"):
        read_split_sheet(tmp_path / "absent.xlsx")
    other = tmp_path / "split.json"
    other.write_text("{}")
    with pytest.raises(InputFileError, match=r"unsupported file type '\.json'"):
        read_split_sheet(other)


# ------------------------------------------------------------------------------------------
# automatic split
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_auto_split_tiny_dataset_groups_persons(tiny_frame, seed):
    splits = auto_split(tiny_frame, seed=seed, balance_on="Site")
    assert list(splits) == ["train", "val", "test"]
    assert sorted(s for v in splits.values() for s in v) == sorted(tiny_frame["scan_id"])
    person_of = dict(zip(tiny_frame["scan_id"], tiny_frame["person_id"]))
    check_person_grouping(splits, person_of)
    for name, scans in splits.items():
        assert len({person_of[s] for s in scans}) >= 1, name


def test_auto_split_is_deterministic_and_seed_dependent(tiny_frame):
    assert auto_split(tiny_frame, seed=3) == auto_split(tiny_frame, seed=3)
    results = {tuple(tuple(v) for v in auto_split(tiny_frame, seed=s).values()) for s in range(10)}
    assert len(results) > 1


def test_auto_split_ignores_row_order(tiny_frame):
    shuffled = tiny_frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert _assignment(auto_split(shuffled, seed=5)) == _assignment(auto_split(tiny_frame, seed=5))


def test_auto_split_does_not_modify_the_frame(tiny_frame):
    before = tiny_frame.copy()
    auto_split(tiny_frame, balance_on="Site", seed=1)
    pd.testing.assert_frame_equal(tiny_frame, before)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_auto_split_balances_regions(seed):
    frame = _regions_frame()
    splits = auto_split(frame, balance_on="region", seed=seed)
    region_of = dict(zip(frame["scan_id"], frame["region"]))
    assert [len(v) for v in splits.values()] == [18, 6, 6]
    for name, scans in splits.items():
        counts = pd.Series([region_of[s] for s in scans]).value_counts()
        assert set(counts.index) == set(frame["region"]), name
        expected = {"train": 6, "val": 2, "test": 2}[name]
        assert (counts == expected).all(), (name, counts.to_dict())


def test_auto_split_balances_with_multi_scan_persons():
    rows = []
    for region in ("C", "T", "L"):
        for i in range(8):
            person = f"{region}{i}"
            rows.append((person, person, region))
            if i % 3 == 0:  # a second scan for some persons
                rows.append((f"{person}_second", person, region))
    frame = pd.DataFrame(rows, columns=["scan_id", "person_id", "region"])
    splits = auto_split(frame, balance_on="region", seed=7)
    check_person_grouping(splits, dict(zip(frame["scan_id"], frame["person_id"])))
    region_of = dict(zip(frame["scan_id"], frame["region"]))
    for scans in splits.values():
        assert {region_of[s] for s in scans} == {"C", "T", "L"}


def test_auto_split_accepts_an_index(tiny_index):
    splits = auto_split(tiny_index, balance_on="Site", seed=0)
    check_person_grouping(splits, tiny_index)
    assert all(splits.values())


@pytest.mark.parametrize(
    "fractions, match",
    [
        ((0.5, 0.5, 0.5), r"sum to 1, got \(0\.5, 0\.5, 0\.5\) \(sum 1\.5\)"),
        ((0.8, 0.3, -0.1), r"must all be > 0, got \(0\.8, 0\.3, -0\.1\)"),
        ((0.6, 0.4, 0.0), r"must all be > 0, got \(0\.6, 0\.4, 0\.0\)"),
        ((1.0,), r"at least 2 splits, got \(1\.0,\)"),
        ((0.5, 0.5), r"names must be 2 distinct names.*\('train', 'val', 'test'\)"),
        (("a", "b", "c"), r"fractions must be numbers, got \('a', 'b', 'c'\)"),
    ],
)
def test_auto_split_validates_fractions(tiny_frame, fractions, match):
    with pytest.raises(PedgmError, match=match):
        auto_split(tiny_frame, fractions=fractions)


def test_auto_split_input_errors(tiny_frame):
    with pytest.raises(PedgmError, match=r"balance_on column 'region' not found"):
        auto_split(tiny_frame, balance_on="region")
    with pytest.raises(PedgmError, match=r"needs columns \['person_id'\]"):
        auto_split(tiny_frame.drop(columns="person_id"))
    doubled = pd.concat([tiny_frame, tiny_frame.iloc[:1]])
    with pytest.raises(PedgmError, match=r"occur twice.*sub-10062Ses1_run-1"):
        auto_split(doubled)


def test_auto_split_two_splits_and_too_few_persons(tiny_frame):
    splits = auto_split(tiny_frame, fractions=(0.75, 0.25), names=("train", "test"))
    assert list(splits) == ["train", "test"] and all(splits.values())
    two = tiny_frame[tiny_frame["person_id"].isin(["sub-9418", "sub-9584"])]
    with pytest.warns(UserWarning, match=r"2 person\(s\) for 3 splits"):
        splits = auto_split(two)
    assert sum(len(v) for v in splits.values()) == 2


# ------------------------------------------------------------------------------------------
# checks and descriptions
# ------------------------------------------------------------------------------------------


def test_check_person_grouping_names_person_and_splits():
    person_of = {"a1": "A", "a2": "A", "b1": "B"}
    check_person_grouping({"train": ["a1", "a2"], "test": ["b1"]}, person_of)
    with pytest.raises(
        PedgmError,
        match=r"person 'A' is in two splits: scan 'a1' in 'train' and scan 'a2' in 'val'",
    ):
        check_person_grouping({"train": ["a1", "b1"], "val": ["a2"]}, person_of)
    with pytest.raises(PedgmError, match=r"scan 'c1' of split 'test' has no known person"):
        check_person_grouping({"train": ["a1"], "test": ["c1"]}, person_of)


def test_split_table(tiny_index):
    splits = {
        "train": ["sub-10062Ses1_run-1_T2starw", "sub-10062Ses2_run-1_T2starw",
                  "sub-9418_run-1_T2starw", "sub-9584_run-1_T2starw"],
        "val": ["sub-9604_run-1_T2starw", "sub-9669_run-1_T2starw"],
        "test": ["sub-9709Ses1_run-1_T2starw", "sub-9709Ses2_run-1_T2starw"],
    }
    table = split_table(tiny_index, splits)
    assert list(table.columns[:5]) == ["split", "person_id", "scans", "n_scans", "n_slices"]
    assert "Site" in table.columns
    assert table.groupby("split", sort=False)["n_scans"].sum().to_dict() == {
        "train": 4, "val": 2, "test": 2}
    row = table.set_index("person_id").loc["sub-10062"]
    assert row["n_scans"] == 2 and row["n_slices"] == 40 and row["Site"] == "CEITEC"
    assert table.set_index("person_id").loc["sub-9669", "n_slices"] == 15
    with pytest.raises(PedgmError, match=r"scan 'ghost' of split 'val' is not in the index"):
        split_table(tiny_index, {"train": [], "val": ["ghost"]})


def test_plot_split_counts(tiny_index, tmp_path):
    from matplotlib.figure import Figure

    splits = auto_split(tiny_index, balance_on="Site", seed=0)
    table = split_table(tiny_index, splits)
    fig = plot_split_counts(table, column="Site")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) > 0 and ax.get_legend() is not None
    fig.savefig(tmp_path / "counts.png")
    assert (tmp_path / "counts.png").stat().st_size > 0

    fig2 = Figure()
    ax2 = fig2.add_subplot()
    assert plot_split_counts(table, value="slices", ax=ax2) is fig2
    heights = sorted(p.get_height() for p in ax2.patches if p.get_height() > 0)
    assert sum(heights) == table["n_slices"].sum()

    with pytest.raises(PedgmError, match=r"value must be one of .*got 'voxels'"):
        plot_split_counts(table, value="voxels")
    with pytest.raises(PedgmError, match=r"\['Scanner'\] not in the split table"):
        plot_split_counts(table, column="Scanner")
