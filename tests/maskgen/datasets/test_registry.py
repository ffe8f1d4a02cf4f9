"""Registry: manifests parse, names, missing roots, the CLI table and show."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from maskgen.cli.main import main
from maskgen.datasets.frames import DatasetRootError
from maskgen.datasets.registry import (
    READERS,
    UnknownDatasetError,
    all_specs,
    dataset_names,
    get_spec,
    open_dataset,
)

NINE = {"butus", "camus", "ddti", "tg3k", "pocus", "busi", "udiat", "tn3k", "hmcqu"}


def test_every_manifest_parses_with_the_required_fields():
    specs = all_specs()
    assert set(specs) == NINE | {"phantom"}
    assert set(dataset_names()) == NINE == set(READERS)
    for spec in specs.values():
        assert spec.root_env.startswith("ANAUS_") and spec.url and spec.citation and spec.layouts
    assert get_spec("camus").labels == {1: "LV endocardium", 2: "myocardium", 3: "left atrium"}
    assert get_spec("pocus").classes == {0: "covid19", 1: "pneumonia", 2: "regular"}
    assert get_spec("busi").classes == {0: "benign", 1: "malignant", 2: "normal"}
    assert get_spec("butus").classes is None and get_spec("butus").labels == {}


def test_manifests_folder_is_overridable(tmp_path, monkeypatch):
    (tmp_path / "busi.toml").write_text(
        'name="busi"\ntitle="t"\nrole="r"\nwhat="w"\nroot_env="X_BUSI"\ngroup_key="g"\n'
        'layouts=["l"]\ncitation="c"\nurl="u"\n[classes]\n0="benign"\n')
    monkeypatch.setenv("ANAUS_MANIFESTS", str(tmp_path))
    assert list(all_specs()) == ["busi"] and get_spec("busi").root_env == "X_BUSI"


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'nope'.*busi"):
        get_spec("nope")
    with pytest.raises(UnknownDatasetError, match="phantom"):
        open_dataset("phantom", ".")


def test_missing_root_names_dataset_place_and_download(tmp_path, monkeypatch):
    monkeypatch.delenv("ANAUS_BUSI_ROOT", raising=False)
    with pytest.raises(DatasetRootError, match="busi.*ANAUS_BUSI_ROOT.*scholar.cu.edu.eg"):
        open_dataset("busi")
    with pytest.raises(DatasetRootError, match=f"busi.*{tmp_path / 'missing'}.*Download"):
        open_dataset("busi", tmp_path / "missing")
    with pytest.raises(DatasetRootError, match="No accepted native layout.*Dataset_BUSI_with_GT"):
        open_dataset("busi", tmp_path)  # exists, but empty


def test_root_comes_from_the_environment(tmp_path, monkeypatch, fx):
    fx.image(tmp_path / "img" / "a.png", fx.noise((8, 8)))
    fx.image(tmp_path / "label" / "a.png", fx.noise((8, 8)) > 127)
    monkeypatch.setenv("ANAUS_DDTI_ROOT", str(tmp_path))
    assert open_dataset("ddti").root == tmp_path


def test_cli_table_and_show(ddti_sample, tmp_path, monkeypatch):
    monkeypatch.setenv("ANAUS_TN3K_ROOT", str(tmp_path))
    runner = CliRunner()
    table = runner.invoke(main, ["datasets"])
    assert table.exit_code == 0
    lines = {line.split()[0]: line for line in table.output.splitlines()}
    assert NINE | {"phantom", "name"} == set(lines)
    assert lines["tn3k"].rstrip().endswith("yes") and lines["busi"].rstrip().endswith("no")
    shown = runner.invoke(main, ["datasets", "show", "ddti", "--root", str(ddti_sample)])
    assert shown.exit_code == 0, shown.output
    assert "layout          samus" in shown.output and "frames          1" in shown.output
    assert "labelled frames 1" in shown.output and "problems        0" in shown.output


def test_cli_show_missing_root_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["datasets", "show", "hmcqu", "--root", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "dataset 'hmcqu': no data found at" in result.output and "kaggle" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(main, ["datasets", "show", "nope", "--root", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown dataset 'nope'" in bad.output


def test_cli_show_lists_problems_and_classes_and_folds_file(tmp_path, fx):
    base = tmp_path / "Dataset_BUSI_with_GT"
    for cls, n in (("benign", 6), ("malignant", 5), ("normal", 4)):
        for i in range(n):
            fx.image(base / cls / f"{cls} ({i + 1}).png", fx.noise((8, 8), i))
            if i:  # the first image of each class lacks its mask
                fx.image(base / cls / f"{cls} ({i + 1})_mask.png", fx.noise((8, 8), i))
    runner = CliRunner()
    shown = runner.invoke(main, ["datasets", "show", "busi", "--root", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "classes         benign=6, malignant=5, normal=4" in shown.output
    assert "labelled frames 12" in shown.output and "problems        3" in shown.output
    assert "benign/benign (1).png: no _mask.png beside the image" in shown.output
    out = tmp_path / "busi_folds.parquet"
    made = runner.invoke(main, ["datasets", "folds", "busi", "--root", str(tmp_path), "--out", str(out),
                                "--k", "3", "--seed", "1"])
    assert made.exit_code == 0, made.output
    from maskgen.datasets.folds import read_folds

    folds = read_folds(out)
    assert len(folds) == 15 and folds.meta["stratified"] and folds.meta["k"] == 3
    assert sorted(np.bincount(folds.folds).tolist()) == [5, 5, 5]


def test_missing_format_library_says_how_to_install():
    from maskgen.datasets.readers.optional import MissingDependencyError, require

    with pytest.raises(MissingDependencyError, match="reading x needs the Python package 'nope_pkg'"):
        require("nope_pkg", "reading x")
    assert require("json", "reading x").dumps([]) == "[]"


def test_cli_show_phantom_summarises_every_subfolder(tmp_path, fx):
    fx.image(tmp_path / "ddti" / "img" / "a.png", fx.noise((8, 8)))
    fx.image(tmp_path / "ddti" / "label" / "a.png", fx.noise((8, 8)))
    result = CliRunner().invoke(main, ["datasets", "show", "phantom", "--root", str(tmp_path)])
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    assert rows["ddti"][1:5] == ["samus", "1", "1", "1"]
    assert rows["busi"][1] == "MISSING" and result.exit_code == 1
    assert "no readable busi, butus, camus, hmcqu, pocus, tg3k, tn3k, udiat under" in result.output
