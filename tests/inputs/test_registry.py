import csv
import os

import pytest

from pedgm_kit import registry
from pedgm_kit.cli import main
from pedgm_kit.exceptions import ChecksumError, DataUnavailableError, PedgmError


def test_registry_matches_mirror_manifest(mirror):
    entries = registry.load_registry()
    with open(mirror / "MANIFEST.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert {r["path"] for r in rows} == set(entries)
    for row in rows:
        entry = entries[row["path"]]
        assert (entry.sha256, entry.size_bytes, entry.url) == (row["sha256"], int(row["bytes"]), row["upstream_url"])


def test_fetch_from_mirror_then_cache(tmp_path, mirror):
    path = "models/deepseg_gm/challenge_model.json"
    got = registry.fetch(path, cache=tmp_path, mirror=mirror)
    assert got == tmp_path / path
    assert registry.sha256sum(got) == registry.load_registry()[path].sha256
    # second time: served from the cache even with a mirror that lacks the file
    assert registry.fetch(path, cache=tmp_path, mirror=tmp_path / "empty") == got


def test_corrupt_cache_is_replaced(tmp_path, mirror):
    path = "models/deepseg_gm/challenge_model.json"
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    target.write_text("tampered")
    registry.fetch(path, cache=tmp_path, mirror=mirror)
    assert registry.sha256sum(target) == registry.load_registry()[path].sha256


def test_checksum_mismatch_in_mirror_is_refused(tmp_path):
    path = "models/deepseg_gm/challenge_model.json"
    bad_mirror = tmp_path / "mirror"
    (bad_mirror / "models/deepseg_gm").mkdir(parents=True)
    (bad_mirror / path).write_text('{"filters": 64}')
    expected = registry.load_registry()[path].sha256
    got = registry.sha256sum(bad_mirror / path)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=f"challenge_model.json.*expected {expected}, got {got}"):
        registry.fetch(path, cache=cache, mirror=bad_mirror)
    assert not (cache / path).exists()
    assert not any(p.is_file() for p in cache.rglob("*")) if cache.exists() else True


def test_no_mirror_no_network_names_file_and_remedy(tmp_path, monkeypatch):
    monkeypatch.delenv("PEDGM_DATA_MIRROR", raising=False)
    entry = registry.Entry("models/x.json", "0" * 64, 2, "http://127.0.0.1:9/x.json")
    with pytest.raises(DataUnavailableError, match=r"models/x.json: not cached.*PEDGM_DATA_MIRROR"):
        registry.fetch("models/x.json", registry={"models/x.json": entry}, cache=tmp_path)
    assert not (tmp_path / "models/x.json").exists()


def test_file_missing_from_mirror(tmp_path):
    with pytest.raises(DataUnavailableError, match="not found in the mirror"):
        registry.fetch("models/deepseg_gm/large_model.json", cache=tmp_path / "c", mirror=tmp_path)


def test_unknown_name():
    with pytest.raises(PedgmError, match="Unknown data name 'nonsense'"):
        registry.group_files("nonsense")


def test_groups_cover_weights_and_samples():
    assert registry.group_files("challenge") == [
        "models/deepseg_gm/challenge_model.hdf5",
        "models/deepseg_gm/challenge_model.json",
    ]
    assert len(registry.group_files("gm-challenge-data")) > 40


def test_cli_fetch(capsys):
    assert main(["fetch", "challenge", "large"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("challenge: ") and out[0].endswith("challenge_model.hdf5")
    assert os.path.isfile(out[1].split(": ", 1)[1])


def test_cli_fetch_errors(capsys):
    assert main(["fetch"]) == 2
    assert main(["fetch", "nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "Unknown data name 'nonsense'" in err[1]
