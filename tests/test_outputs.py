"""tfvae writes only to absent paths, empty folders and folders it wrote itself."""

import json
import os

import pytest

from tests.helpers import user_files
from tfvae import outputs
from tfvae.outputs import (
    BUNDLE,
    CHECKPOINT,
    MODEL,
    SAVED_MODEL,
    SAVED_MODEL_BASE,
    OutputRefusedError,
)


def _model_folder(folder, versions=()):
    """A model folder as `tfvae train` writes it, with SavedModel version folders."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"format": MODEL.format, "config": {}}))
    for name in ("model.keras", "history.json", "samples.png", "reconstructions.png"):
        (folder / name).write_bytes(b"tfvae")
    for version in versions:
        _saved_model(folder / str(version))
    return folder


def _saved_model(folder):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    outputs.write_marker(folder, SAVED_MODEL)
    return folder


def _bundle(folder):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"format": BUNDLE.format}))
    for name in ("decoder.onnx", "encoder.onnx", "manifest.sha256"):
        (folder / name).write_bytes(b"onnx")
    return folder


def _refusal(path, kind, **kwargs):
    with pytest.raises(OutputRefusedError) as error:
        outputs.check_destination(path, kind, "out", **kwargs)
    assert error.value.path == path and error.value.argument == "out"
    return str(error.value)


@pytest.mark.parametrize("kind", [MODEL, BUNDLE, SAVED_MODEL, SAVED_MODEL_BASE, CHECKPOINT])
def test_an_absent_path_or_an_empty_folder_is_accepted(tmp_path, kind):
    assert outputs.check_destination(tmp_path / "new" / "deeper", kind, "out") == (
        tmp_path / "new" / "deeper"
    )
    (tmp_path / "empty").mkdir()
    assert outputs.check_destination(str(tmp_path / "empty"), kind, "out") == tmp_path / "empty"


def test_folders_tfvae_wrote_are_accepted(tmp_path):
    model = _model_folder(tmp_path / "model", versions=(1, 12))
    outputs.check_destination(model, MODEL, "out")
    outputs.check_destination(model, SAVED_MODEL_BASE, "saved_model_dir")
    outputs.check_destination(model / "1", SAVED_MODEL, "saved_model_dir/VERSION")
    outputs.check_destination(_bundle(tmp_path / "bundle"), BUNDLE, "out_dir")
    # A hierarchy's bundle holds one decoder and encoder per layer above z1; a look-alike
    # name is still a user's file.
    layered = _bundle(tmp_path / "layered")
    for name in ("decoder_2.onnx", "encoder_2.onnx", "decoder_13.onnx"):
        (layered / name).write_bytes(b"onnx")
    outputs.check_destination(layered, BUNDLE, "out_dir")
    (layered / "decoder_2.onnx.bak").write_bytes(b"mine")
    assert "decoder_2.onnx.bak" in _refusal(layered, BUNDLE)
    base = tmp_path / "serving"
    _saved_model(base / "3")
    outputs.check_destination(base, SAVED_MODEL_BASE, "saved_model_dir")
    assert outputs.saved_model_versions(model) == ["1", "12"]
    assert outputs.saved_model_versions(base) == ["3"]
    assert outputs.saved_model_versions(tmp_path / "absent") == []


def test_a_folder_of_user_files_is_refused_with_its_entries_named(tmp_path):
    folder = user_files(tmp_path / "victim")
    for kind in (MODEL, BUNDLE, SAVED_MODEL, SAVED_MODEL_BASE, CHECKPOINT):
        message = _refusal(folder, kind)
        assert f"Received: out={str(folder)!r}" in message
        assert "a folder with 2 entries tfvae did not write: notes.txt, sub" in message
        assert "Choose another path, or move those entries away" in message


def test_an_own_folder_with_an_extra_user_file_is_refused(tmp_path):
    model = _model_folder(tmp_path / "model", versions=(1,))
    (model / "notes.txt").write_text("mine")
    message = _refusal(model, MODEL)
    assert "a model folder tfvae wrote, with 1 entry tfvae did not write: notes.txt" in message
    bundle = _bundle(tmp_path / "bundle")
    (bundle / "README").write_text("mine")
    assert "a bundle folder tfvae wrote, with 1 entry tfvae did not write: README" in _refusal(
        bundle, BUNDLE
    )
    # A SavedModel base folder that is a model folder is checked as one.
    assert "notes.txt" in _refusal(model, SAVED_MODEL_BASE)


def test_markers_are_required_and_must_match_the_kind(tmp_path):
    unmarked = tmp_path / "unmarked"
    unmarked.mkdir()
    (unmarked / "config.json").write_text(json.dumps({"config": {}}))
    message = _refusal(unmarked, MODEL)
    assert "1 entry tfvae did not write: config.json" in message
    assert 'config.json lacks tfvae\'s "format": "tfvae.model"' in message
    # A bundle is not a model folder, and a version folder without its marker is foreign.
    assert "manifest.json" in _refusal(_bundle(tmp_path / "bundle"), MODEL)
    model = _model_folder(tmp_path / "model")
    (model / "2").mkdir()
    (model / "2" / "saved_model.pb").write_bytes(b"not from tfvae")
    assert "1 entry tfvae did not write: 2" in _refusal(model, MODEL)
    assert "2" in _refusal(model / "2", SAVED_MODEL)
    base = tmp_path / "base"
    _saved_model(base / "1")
    (base / "latest").mkdir()
    assert "a folder with 1 entry tfvae did not write: latest" in _refusal(base, SAVED_MODEL_BASE)


def test_a_file_a_symlink_and_a_path_inside_a_file_are_refused(tmp_path):
    file = tmp_path / "important.txt"
    file.write_text("precious")
    assert "a file. Choose another path, or move that file away" in _refusal(file, BUNDLE)
    assert f"a path inside the file {str(file)!r}" in _refusal(file / "bundle", BUNDLE)
    link = tmp_path / "link"
    link.symlink_to(_model_folder(tmp_path / "model"))
    assert "a symbolic link" in _refusal(link, MODEL)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert "a symbolic link" in _refusal(dangling, MODEL)


def test_the_working_directory_and_its_ancestors_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)  # empty, yet never an output
    monkeypatch.chdir(work)
    for path in (".", "", str(work), "./sub/..", "..", "/"):
        message = _refusal(type(work)(path), MODEL)
        assert "current working directory" in message
    assert "an ancestor of the current working directory" in _refusal(tmp_path, SAVED_MODEL_BASE)
    outputs.check_destination("sub", MODEL, "out")  # a new folder inside it is fine


def test_the_home_folder_and_its_ancestors_are_refused(tmp_path, monkeypatch):
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert "the home folder" in _refusal(home, BUNDLE)
    assert "an ancestor of the home folder" in _refusal(home.parent, BUNDLE)
    outputs.check_destination(home / "export" / "digits", BUNDLE, "out")


def test_inputs_and_the_folders_holding_them_are_refused(tmp_path):
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)  # empty, yet an input
    protected = {"data_dir": data}
    assert f"the input data_dir={str(data)!r}" in _refusal(data, MODEL, protected=protected)
    message = _refusal(data.parent, MODEL, protected=protected)
    assert f"a folder that holds the input data_dir={str(data)!r}" in message
    outputs.check_destination(tmp_path / "project" / "run", MODEL, "out", protected=protected)


def test_overlapping_destinations_are_refused(tmp_path):
    outputs.check_apart({"out_dir": tmp_path / "a", "saved_model_dir": tmp_path / "b"})
    for first, second in [("a", "a"), ("a", "a/b"), ("a/b", "a")]:
        with pytest.raises(OutputRefusedError, match="overlaps saved_model_dir"):
            outputs.check_apart({"out_dir": tmp_path / first, "saved_model_dir": tmp_path / second})


def test_directory_replaces_its_own_kind_and_keeps_saved_model_versions(tmp_path):
    model = _model_folder(tmp_path / "model", versions=(1, 2))
    before = {p.relative_to(model): p.read_bytes() for p in model.rglob("*") if p.is_file()}
    with outputs.directory(model, MODEL, "out") as staging:
        (staging / "config.json").write_text(json.dumps({"format": MODEL.format, "run": 2}))
    assert sorted(os.listdir(model)) == ["1", "2", "config.json"]
    after = {p.relative_to(model): p.read_bytes() for p in model.rglob("*") if p.is_file()}
    for path, content in before.items():
        if path.parts[0] in ("1", "2"):
            assert after[path] == content
    assert os.listdir(tmp_path) == ["model"]


def test_directory_checks_again_before_the_swap(tmp_path):
    model = _model_folder(tmp_path / "model", versions=(1,))
    with pytest.raises(OutputRefusedError, match="1 entry tfvae did not write: notes.txt"):
        with outputs.directory(model, MODEL, "out") as staging:
            (staging / "config.json").write_text("{}")
            (model / "notes.txt").write_text("written while training ran")
    assert sorted(os.listdir(model)) == sorted(
        ["1", "config.json", "history.json", "model.keras", "notes.txt"]
        + ["reconstructions.png", "samples.png"]
    )
    assert (model / "notes.txt").read_text() == "written while training ran"
    assert os.listdir(tmp_path) == ["model"]
