"""Scoring a prediction file needs no torch, DeepSpeed or FAISS (issue 22, item 8): the scorers import nothing
heavy, and they run, giving the same numbers, in a fresh venv that holds only the base install's dependencies.

The venv is built offline: `venv` without pip, then each distribution of the closure of pyproject.toml's base
`dependencies` (read through their installed metadata) linked into its site-packages, nothing else. So the test
checks what pyproject declares: a scorer importing a package that only an extra brings fails here."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SCORERS = ("evaluation/eval_task.py", "evaluation/eval_all.py", "evaluation/compare.py")
HEAVY = ("torch", "deepspeed", "faiss", "transformers", "accelerate", "peft", "numba", "vllm")


@pytest.mark.multiprocess
@pytest.mark.parametrize("script", SCORERS)
def test_a_scorer_imports_nothing_heavy(script):
    """What `python <scorer> --help` imports: its whole import chain (the parser is built from its dataclasses)."""
    code = ("import json, runpy, sys\n"
            f"sys.argv = [{script!r}, '--help']\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def base_requirements() -> list:
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("reading pyproject.toml needs tomllib (Python 3.11+)")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project["dependencies"]]


def closure(requirements) -> dict[str, metadata.Distribution]:
    """The installed distributions the requirements need, transitively (markers evaluated, no extras)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found, todo = {}, list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        try:
            found[name] = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{requirement.name}, which the base install needs, is not installed here")
        todo += [Requirement(text) for text in found[name].requires or []]
    return found


def light_venv(folder: Path) -> Path:
    """A venv holding the base install's distributions only (linked from this environment's); its python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name, dist in closure(base_requirements()).items():
        if dist.files is None:
            pytest.skip(f"{name} was installed without a file list (RECORD): cannot link it")
        for top in sorted({file.parts[0] for file in dist.files if file.parts[0] not in ("..", "__pycache__")}):
            target = site / top
            if not target.exists():
                target.symlink_to(Path(dist.locate_file(top)))
    return python


def sample_files(folder: Path, sample_cache: str) -> dict[str, Path]:
    """Gold and prediction files of the sample's product-review validation split: system a answers with the task
    input, system b with the first half of the gold text."""
    import longlamp
    from scoring.files import write_predictions

    rows = longlamp.load_rows("product_review_user", "validation", data_dir=str(SAMPLE), cache_dir=sample_cache)
    ids, task = list(rows["id"]), "LongLaMP_product_review_user"
    paths = {name: folder / f"{name}.json" for name in ("golds", "a", "b")}
    write_predictions(paths["golds"], task, ids, dict(zip(ids, rows["output"])),
                      users=dict(zip(ids, map(str, rows["reviewerId"]))))
    write_predictions(paths["a"], task, ids, dict(zip(ids, rows["input"])))
    halves = [" ".join(text.split()[:len(text.split()) // 2]) for text in rows["output"]]
    write_predictions(paths["b"], task, ids, dict(zip(ids, halves)))
    for name in ("golds", "b"):
        with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
            archive.write(paths[name], f"{name}/review.json")
        paths[f"{name}_zip"] = folder / f"{name}.zip"
    return paths


def scorer_runs(files: dict[str, Path], out: Path) -> dict[str, list[str]]:
    return {
        "eval_task": ["evaluation/eval_task.py", "--golds_json", files["golds"], "--preds_json", files["b"],
                      "--output_file", out / "eval_task.json", "--per_sample_file", out / "per_sample.jsonl"],
        "eval_all": ["evaluation/eval_all.py", "--golds_zip", files["golds_zip"], "--preds_zip", files["b_zip"],
                     "--temp_dir", out / "unzipped", "--output_file", out / "eval_all.json"],
        "compare": ["evaluation/compare.py", "--golds", files["golds"], "--preds_a", files["a"], "--preds_b",
                    files["b"], "--by_user", "--resamples", "2000", "--output_file", out / "compare.json"],
    }


@pytest.mark.slow
@pytest.mark.multiprocess
def test_the_scorers_run_without_torch_and_give_the_same_numbers(tmp_path, sample_cache):
    nltk_data = Path(sys.prefix) / "nltk_data"
    if not (nltk_data / "corpora").is_dir():
        pytest.skip(f"NLTK's WordNet and Punkt are not in {nltk_data} (make setup puts them there)")
    python = light_venv(tmp_path / "venv")
    missing = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'torch'" in missing.stderr
    for package in ("deepspeed", "faiss", "transformers"):
        assert subprocess.run([str(python), "-c", f"import {package}"], capture_output=True).returncode != 0

    files = sample_files(tmp_path, sample_cache)
    env = {"NLTK_DATA": str(nltk_data), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    outputs = {}
    for interpreter, label in ((str(python), "light"), (sys.executable, "full")):
        out = tmp_path / label
        out.mkdir()
        for name, argv in scorer_runs(files, out).items():
            done = subprocess.run([interpreter, *map(str, argv)], cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, f"{label} {name}: {done.stderr[-3000:]}"
        outputs[label] = {name: json.loads((out / f"{name}.json").read_text()) for name in scorer_runs(files, out)}
    light, full = outputs["light"], outputs["full"]
    assert light["eval_task"]["metrics"] == full["eval_task"]["metrics"]
    assert light["eval_all"]["tasks"].keys() == full["eval_all"]["tasks"].keys()
    for task, result in light["eval_all"]["tasks"].items():
        assert result["metrics"] == full["eval_all"]["tasks"][task]["metrics"]
    assert light["compare"]["metrics"] == full["compare"]["metrics"]
    assert light["eval_task"]["metrics"]["rougeL"] > 0
