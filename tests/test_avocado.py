"""The Avocado email task: built from question files and a zip of RFC 822 messages, as the benchmark does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import longlamp
from longlamp_errors import DataError

REPO = Path(__file__).resolve().parents[1]

# A folded subject (its line break survives in mail-parser) and CRLF bodies, the two places where Python's
# standard email parser would give different rows.
MESSAGES = {
    "001-000001-EM": (
        "Message-ID: <1@avocado>\r\nFrom: ann@avocado\r\nSubject: Kiln schedule for the\r\n spring firing\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hi Bob,\r\n\r\nThe kiln is booked for Tuesday.\r\nBring the glazed vases.\r\n\r\nAnn\r\n"
    ),
    "001-000002-EM": (
        "Message-ID: <2@avocado>\r\nFrom: ann@avocado\r\nSubject: Clay order\r\n\r\n"
        "  We need two bags of stoneware clay and one of porcelain.  \r\n"
    ),
    "001-000003-EM": (
        "Message-ID: <3@avocado>\r\nFrom: ann@avocado\r\nSubject: =?utf-8?q?Caf=C3=A9_meeting?=\r\n\r\n"
        "See you at the café at noon.\r\n"
    ),
}
QUESTIONS = [
    {"id": "q1", "input": "001-000001-EM", "content_length": 4, "user_id": "ann",
     "profile": [{"id": "p1", "text": "001-000002-EM"}, {"id": "p2", "text": "001-000003-EM"}]},
    {"id": "q2", "input": "001-000002-EM", "content_length": 20, "user_id": "ann", "profile": []},
]


def make_manual_dir(root: Path, layout: str = "temporal") -> Path:
    folder = root / layout if layout else root
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (folder / f"{split}_questions.json").write_text(json.dumps(QUESTIONS))
    (root / "text").mkdir()
    with zipfile.ZipFile(root / "text" / "001.zip", "w") as zf:
        for message_id, text in MESSAGES.items():
            zf.writestr(f"001/{message_id}", text.encode("utf-8"))
    return root


def test_rows_follow_the_official_algorithm(tmp_path):
    manual = make_manual_dir(tmp_path / "avocado")
    rows = longlamp.load("email_generation_temporal", split="train", data_dir=str(manual),
                         cache_dir=str(tmp_path / "cache"))
    first, second = rows[0], rows[1]
    assert first["id"] == "q1" and first["user_id"] == "ann"
    assert first["input"] == ("Complete the text of the following email. title: Kiln schedule for the\r\n spring "
                              "firing. text: Hi Bob, The kiln")
    assert first["output"] == "is booked for Tuesday. Bring the glazed vases. Ann"
    assert first["profile"] == [
        {"id": "p1", "title": "Clay order", "text": "We need two bags of stoneware clay and one of porcelain."},
        {"id": "p2", "title": "Café meeting", "text": "See you at the café at noon."},
    ]
    # content_length beyond the body: everything is input, the output is empty.
    assert second["input"].endswith("text: We need two bags of stoneware clay and one of porcelain.")
    assert second["output"] == "" and second["profile"] == []


def test_body_keeps_its_line_endings(tmp_path):
    extra = {"id": "q3", "input": "001-000002-EM", "content_length": 3,
             "profile": [{"id": "p3", "text": "001-000001-EM"}]}
    manual = make_manual_dir(tmp_path / "avocado", layout="")
    (manual / "train_questions.json").write_text(json.dumps([extra]))
    rows = longlamp.load("email_generation_user", split="train", data_dir=str(manual), cache_dir=str(tmp_path / "c"))
    assert rows[0]["profile"][0]["text"] == ("Hi Bob,\r\n\r\nThe kiln is booked for Tuesday.\r\nBring the glazed "
                                             "vases.\r\n\r\nAnn")
    assert rows[0]["user_id"] is None  # the user setting's question files have no user column


def test_bundled_avocado_sample_builds_both_settings(sample_dir, sample_cache):
    for setting in ("user", "temporal"):
        loaded = longlamp.load(f"email_generation_{setting}", data_dir=str(sample_dir / "avocado"),
                               cache_dir=sample_cache)
        assert {split: len(ds) for split, ds in loaded.items()} == {"train": 8, "validation": 4, "test": 4}
        assert all(row["input"].startswith("Complete the text of the following email. title: ")
                   for row in loaded["train"])


def test_without_manual_data_the_error_says_what_to_get(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"needs a manual download(.|\n)*LDC2015T03(.|\n)*train_questions.json"):
        longlamp.load("email_generation", cache_dir=str(tmp_path))
    manual = make_manual_dir(tmp_path / "avocado")
    (manual / "temporal" / "dev_questions.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"Missing question files \['dev_questions.json'\]"):
        longlamp.load("email_generation_temporal", data_dir=str(manual), cache_dir=str(tmp_path))
    for archive in (manual / "text").glob("*.zip"):
        archive.unlink()
    (manual / "temporal" / "dev_questions.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match=r"Missing Avocado zip archives"):
        longlamp.load("email_generation_temporal", data_dir=str(manual), cache_dir=str(tmp_path))


def test_message_missing_from_the_archives_is_named(tmp_path):
    manual = make_manual_dir(tmp_path / "avocado")
    broken = [dict(QUESTIONS[0], input="999-000000-EM")]
    (manual / "temporal" / "test_questions.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"1 referenced message\(s\) are not in the Avocado archives.*999-000000-EM"):
        longlamp.load("email_generation_temporal", data_dir=str(manual), cache_dir=str(tmp_path / "cache"))


def _create_avocado_dataset(files_dir: Path, questions: Path, tmp_path: Path) -> Path:
    output = tmp_path / "built"
    command = [sys.executable, str(REPO / "scripts" / "create_avocado_dataset.py"),
               "--avocado_files_dir", str(files_dir),
               "--extract_addr", str(tmp_path / "extract"), "--output_dir", str(output)]
    for prefix in ("train", "dev", "test"):
        command += [f"--input_question_file_{prefix}", str(questions / f"{prefix}_questions.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return output


@pytest.mark.multiprocess
@pytest.mark.parametrize("setting", ["user", "temporal"])
def test_the_benchmark_command_writes_the_rows_of_the_builder(setting, sample_dir, tmp_path):
    """The README's create_avocado_dataset.py command gives LaMP-style files holding exactly the builder's rows."""
    avocado = sample_dir / "avocado"
    output = _create_avocado_dataset(avocado / "text", avocado / setting, tmp_path)
    assert sorted(p.name for p in output.iterdir()) == ["dev_outputs.json", "dev_questions.json", "test_questions.json",
                                                          "train_outputs.json", "train_questions.json"]
    assert json.loads((output / "dev_outputs.json").read_text())["task"] == f"LongLaMP_email_generation_{setting}"
    config = f"email_generation_{setting}"
    for prefix, split in (("train", "train"), ("dev", "validation"), ("test", "test")):
        built = longlamp.load(config, split=split, data_dir=str(avocado), cache_dir=str(tmp_path / "cache"))
        written = longlamp.load_split(str(output / f"{prefix}_questions.json"), split, task=config)
        assert len(written) == len(built) > 0
        for ours, theirs in zip(written, built):
            if prefix == "test":  # the benchmark keeps test outputs hidden: the file has none
                assert ours["output"] is None
                ours, theirs = {**ours, "output": None}, {**theirs, "output": None}
            assert ours == theirs


@pytest.mark.multiprocess
def test_the_release_folder_itself_is_accepted(sample_dir, tmp_path):
    """Pointed at `avocado-1.0.2/` (archives under data/text/), the builder and the command find the archives."""
    release = tmp_path / "avocado-1.0.2"
    (release / "data" / "text").mkdir(parents=True)
    shutil.copy(sample_dir / "avocado" / "text" / "001.zip", release / "data" / "text" / "001.zip")
    shutil.copytree(sample_dir / "avocado" / "user", release / "user")
    rows = longlamp.load("email_generation_user", split="validation", data_dir=str(release),
                         cache_dir=str(tmp_path / "cache"))
    output = _create_avocado_dataset(release, release / "user", tmp_path)
    outputs = json.loads((output / "dev_outputs.json").read_text())["golds"]
    assert [gold["output"] for gold in outputs] == rows["output"] and rows["output"][0]
