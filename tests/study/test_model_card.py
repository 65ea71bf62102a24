"""Model cards: built from a run folder, written on export, shown on use, round-tripped, SIMULATED kept."""

from __future__ import annotations

import json
import shutil

import pytest

from pedgm_kit.cli import main
from pedgm_kit.model_card import (
    CARD_JSON,
    build_card,
    card_for,
    card_markdown,
    read_card,
    summary_line,
    write_card,
)
from pedgm_kit.registry import sha256sum
from pedgm_kit.weights import weights_path


@pytest.fixture
def cv_run(tmp_path, gm_challenge):
    """A run folder as `pedgm run` lays it out: two fold models of variant v, the data manifest, scan records."""
    from test_ensemble import make_cv_run

    run = tmp_path / "run"
    variant, members = make_cv_run(run)
    data = run / "data" / "data"
    data.mkdir(parents=True)
    (run / "data" / "manifest.json").write_text(json.dumps({"splits": {"train": [], "val": [], "test": []}}))
    sources = [gm_challenge / f"{s}/anat/{s}_run-1_T2starw.nii.gz" for s in ("sub-9418", "sub-9584")]
    (data / "scans.json").write_text(json.dumps({"schema": 1, "scans": [
        {"scan_id": p.name, "split": "train", "source_image": str(p)} for p in sources]}))
    for k, member in enumerate(members, start=1):  # the persons of the sample whose sites the card must find
        summary = json.loads((member.parent / "summary.json").read_text())
        summary["train_persons"] = ["sub-9418", "sub-9584"] if k == 1 else ["sub-9418"]
        (member.parent / "summary.json").write_text(json.dumps(summary))
    return run, variant, members


def test_card_of_a_fold_model_and_of_the_ensemble(cv_run):
    run, variant, members = cv_run
    card = build_card(members[0])
    assert card["kind"] == "single" and card["name"] == "v"
    assert card["training"]["persons"] == {"count": 2, "ids": ["sub-9418", "sub-9584"]}
    assert card["training"]["sites"] == {"count": 2, "names": ["NWU", "UCL"]}  # participants.tsv's Site
    assert card["threshold"] == {"value": 0.999, "how": "chosen on validation (test fixture)"}
    assert card["weights"][0]["sha256"] == sha256sum(members[0])
    assert card["data_manifest"]["sha256"] == sha256sum(run / "data" / "manifest.json")
    assert card["results"]["interval"] is None and card["simulated"] is None
    ens = build_card(variant)
    assert ens["kind"] == "ensemble" and len(ens["weights"]) == 2
    assert ens["results"]["test_dice_mean"] == pytest.approx((0.81 + 0.82) / 2)
    assert [f["fold"] for f in ens["results"]["folds"]] == ["1", "2"]
    assert summary_line(ens).startswith("v (ensemble, 2 folds), trained on 2 persons / 2 sites, threshold 0.999, "
                                        "test Dice 0.815")


def test_card_cv_dice_is_the_mean_over_persons_not_of_fold_means(cv_run):
    """Regression: the card averaged the fold means, so a person of a small fold weighed more.
    Fold 1 tests one person (0.9), fold 2 three persons (0.6): over persons 0.675, not 0.75."""
    run, variant, members = cv_run
    for member, per in zip(members, [{"sub-a": 0.9}, {"sub-b": 0.5, "sub-c": 0.6, "sub-d": 0.7}]):
        summary = json.loads((member.parent / "summary.json").read_text())
        summary.update(test_dice=sum(per.values()) / len(per), test_persons=sorted(per), test_dice_per_person=per)
        (member.parent / "summary.json").write_text(json.dumps(summary))
    results = build_card(variant)["results"]
    assert results["test_dice_mean"] == pytest.approx(0.675) and results["n_persons_scored"] == 4
    assert "not a mean of fold means" in results["note"]
    assert "mean over 4 persons of 2 fold(s)" in card_markdown(build_card(variant))
    for member in members:  # older summaries without per-person values: each fold's mean once per test person
        summary = json.loads((member.parent / "summary.json").read_text())
        del summary["test_dice_per_person"]
        (member.parent / "summary.json").write_text(json.dumps(summary))
    assert build_card(variant)["results"]["test_dice_mean"] == pytest.approx(0.675)


def test_card_round_trips_and_marks_simulated_data(cv_run):
    run, variant, members = cv_run
    (run / "preprocess" / "simulated-invert").mkdir(parents=True)
    (run / "preprocess" / "simulated-invert" / "SIMULATED.txt").write_text("SIMULATED: contrast inversion\n")
    assert read_card(variant) is None
    card, found = card_for(variant, write=True)
    assert not found and (variant / CARD_JSON).is_file() and (variant / "model_card.md").is_file()
    again, found = card_for(variant)
    assert found and again == json.loads(json.dumps(card))  # what was written is what is read
    assert summary_line(again).startswith("SIMULATED training data: ")
    assert "**SIMULATED**" in (variant / "model_card.md").read_text()
    assert "contrast inversion" in card_markdown(again)
    with pytest.raises(Exception, match="exists"):
        write_card(variant, card, overwrite=False)


def test_export_writes_a_card_and_model_card_prints_it(cv_run, tmp_path, capsys):
    _, variant, members = cv_run
    out = tmp_path / "exp"
    out.mkdir()
    assert main(["export", "--model", str(members[0]), "--format", "hdf5", "--out", str(out)]) == 0
    exported = out / "best.hdf5"
    card = json.loads((out / CARD_JSON).read_text())
    assert card["weights"] == [{"path": str(exported), "sha256": sha256sum(exported)}]
    assert card["exported_from"]["weights"][0]["sha256"] == sha256sum(members[0])
    assert card["training"]["persons"]["count"] == 2
    capsys.readouterr()
    assert main(["model-card", str(exported)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Model card: v") and "sub-9418, sub-9584" in text and "NWU, UCL" in text
    assert main(["model-card", str(variant), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "ensemble"
    assert main(["model-card", str(tmp_path / "none.hdf5")]) == 2
    assert "none.hdf5" in capsys.readouterr().err


@pytest.mark.slow
def test_segment_shows_the_card_line_and_a_model_without_card_still_runs(tmp_path, gm_challenge, capsys):
    weights = tmp_path / "w.hdf5"
    shutil.copy(weights_path("challenge"), weights)
    shutil.copy(weights_path("challenge").with_suffix(".json"), weights.with_suffix(".json"))
    image = tmp_path / "s.nii.gz"
    shutil.copy(gm_challenge / "sub-9418/anat/sub-9418_run-1_T2starw.nii.gz", image)
    assert main(["segment", str(image), "--model", str(weights)]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "had no model card" in err and "trained on 0 persons" in err
    assert (tmp_path / "w_model_card.json").is_file()  # written from the files it has
    assert main(["segment", str(image), "--model", str(weights), "--overwrite"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "model:" in line]
    assert lines == [f"pedgm segment: model: {summary_line(read_card(weights))}"]
