"""A LongLaMP config (prepared, or ranked by `retrieval/rank_profiles.py`) as a standard Hub dataset folder:
`<config>/<split>-00000-of-00001.parquet` per split and a `README.md` whose YAML declares `configs` (data_files
per split), `dataset_info` (features, split sizes), licence and task categories, so that plain
`datasets.load_dataset(folder_or_repo, config)` loads it without our code. Several configs share one folder: an
export adds or replaces its config in the existing card. A config read from the Hub keeps its provenance there
(`longlamp_runs.ORIGIN_KEY`: the repository, the commit read, a digest of its files), so that runs on the copy are
published as the Hub dataset's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from longlamp_errors import PublishError
from longlamp_io import RunLock, folder_content_digest, write_text_atomic
from longlamp_runs import CARD_FILE, ORIGIN_KEY
from longlamp_tasks import CITATION, parse_config_name
from publishing.runs import public_name

logger = logging.getLogger(__name__)
TEMPLATE = Path(__file__).with_name("dataset_card_template.md")
HOMEPAGE = "https://longlamp-benchmark.github.io"
SOURCE_REPO = "LongLaMP/LongLaMP"
AVOCADO_LICENSE = ("The email_generation configs derive from the Avocado Research Email Collection (LDC2015T03), "
                   "distributed by the Linguistic Data Consortium under a licence that forbids redistribution: keep "
                   "such a repository private to licensees (https://catalog.ldc.upenn.edu/LDC2015T03).")
PUBLIC_LICENSE = (f"The texts come from the public sources of the LongLaMP benchmark ({HOMEPAGE}); see its data card "
                  "for the terms of each source.")


def _ranked_splits(ranked: Mapping[str, str | Path]) -> dict:
    import pyarrow.parquet
    from datasets.exceptions import DatasetGenerationError

    import longlamp

    splits = {}
    for split, path in ranked.items():
        if not Path(path).exists():
            raise PublishError(f"--ranked {path}: no such file")
        try:
            if Path(path).suffix == ".parquet":  # its footer first: datasets would log the failure at length
                pyarrow.parquet.read_schema(path)
            data = longlamp.load_split(str(path), split)
        except (ValueError, OSError, DatasetGenerationError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise PublishError(f"--ranked {path}: not a dataset file written by retrieval/rank_profiles.py "
                               f"({type(error).__name__}: {' '.join(str(error).split())})") from None
        if "ranked_by" not in data.column_names:
            raise PublishError(f"--ranked {path}: no 'ranked_by' column (not written by retrieval/rank_profiles.py)")
        splits[split] = data
    return splits


def _check_ranked_rows(splits: dict, ranked: Mapping[str, str | Path], config: str, **source) -> None:
    """Each ranked file must hold the rows of the split it is exported as, of this config: a file ranked from
    another config or split would be published under the wrong name."""
    import longlamp

    for split, data in splits.items():
        try:
            expected = longlamp.load_split(config, split, **source)
        except (FileNotFoundError, ValueError) as error:
            raise PublishError(f"--ranked {ranked[split]}: cannot load the {split} split of {config} to check it "
                               f"against: {error}") from None
        want = dict(zip(expected["id"], expected["output"]))
        have = dict(zip(data["id"], data["output"]))
        if have != want:
            unknown = sum(1 for i, text in have.items() if want.get(i) != text)
            raise PublishError(f"--ranked {split}={ranked[split]}: not the {split} split of {config} ({len(have)} "
                               f"rows, {unknown} of them not in that split, which has {len(want)}): rank that split, "
                               "or name the file's own split and config")


def _retriever_name(splits: dict) -> str:
    names = {str(data[0]["ranked_by"]).split("(")[0] for data in splits.values() if len(data)}
    if len(names) != 1:
        raise PublishError(f"--ranked files come from different retrievers ({', '.join(sorted(names))}): export them "
                           "separately")
    return names.pop()


def hub_commit(revision: str | None) -> str:
    """The commit of LongLaMP/LongLaMP that `revision` (a branch, tag or commit; None: main) names now: an export
    reads that commit and records it, so its card names exactly the rows it holds."""
    from huggingface_hub.errors import HfHubHTTPError

    from publishing.hub import _network_errors, hub_api

    try:
        return hub_api(None).dataset_info(SOURCE_REPO, revision=revision).sha
    except (*_network_errors(), HfHubHTTPError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PublishError(f"cannot read {SOURCE_REPO} at {revision or 'main'} on the Hub: {message}") from None


def export_config(config: str, output: str | Path, *, data_dir: str | None = None, cache_dir: str | None = None,
                  ranked: Mapping[str, str | Path] | None = None, revision: str | None = None) -> str:
    """Write `config` (or its ranked splits) into the dataset folder `output`; returns the config name written.

    A config read from the Hub is read at one commit, which its card records with a digest of its files
    (`longlamp_runs.ORIGIN_KEY`): a run on the folder then records that origin, and publishing names its data as
    LongLaMP/LongLaMP at that revision, as long as the files are unchanged."""
    import longlamp

    task, setting = parse_config_name(config)
    canonical = f"{task.name}_{setting}"
    from_hub = not data_dir and not ranked and task.public  # the email task is never on the Hub
    if from_hub:
        revision = hub_commit(revision)
    source = {"data_dir": data_dir, "cache_dir": cache_dir, **({"revision": revision} if revision else {})}
    if ranked:
        splits = _ranked_splits(ranked)
        _check_ranked_rows(splits, ranked, canonical, **source)
        retriever = _retriever_name(splits)
        name = f"{canonical}_{retriever}_ranked"
    else:
        loaded = longlamp.load(canonical, **source)
        splits, retriever, name = dict(loaded), None, canonical
    output = Path(output)
    # One export at a time writes a folder: each rewrites the card that lists every config in it (two at once lose
    # one), and their temporary files share names. Taken after the checks, so a refused export creates nothing.
    with RunLock(output, "scripts/export_dataset.py"):
        folder = output / name
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.parquet"):
            if stale.name.split("-")[0] not in splits:
                stale.unlink()
        for split, data in splits.items():
            target = folder / f"{split}-00000-of-00001.parquet"
            temporary = folder / f".{target.name}.tmp"
            data.to_parquet(str(temporary))  # datasets' writer: the features travel in the schema metadata
            temporary.replace(target)
        at = f" at revision {revision}" if revision else ""
        origin = None if not from_hub else {"config_name": name, "repo_id": SOURCE_REPO, "revision": revision,
                                            "digest": folder_content_digest(folder)}
        source = (f"{SOURCE_REPO}{at}" if not data_dir else
                  f"local data (`{public_name(data_dir)}`), not checked against {SOURCE_REPO}")
        _write_card(output, name, task, splits, retriever, origin, source=source)
    logger.info("exported %s (%s) to %s", name, ", ".join(f"{s}: {len(d)} rows" for s, d in splits.items()), folder)
    return name


def license_fields(licensed: bool) -> dict:
    """The card metadata of LongLaMP data's terms: the LDC's licence for the email task (Avocado), the sources'
    own terms for the rest."""
    return {"license": "other", "license_name": "ldc-avocado" if licensed else "longlamp-sources",
            "license_link": "https://catalog.ldc.upenn.edu/LDC2015T03" if licensed else HOMEPAGE}


def _config_entries(name: str, splits: dict) -> tuple[dict, dict]:
    config = {"config_name": name, "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"}
                                                  for split in splits]}
    features = next(iter(splits.values())).features
    # Features._to_yaml_list is the writer DatasetDict.push_to_hub uses for this same block.
    info = {"config_name": name, "features": features._to_yaml_list(),
            "splits": [{"name": split, "num_bytes": data.data.nbytes, "num_examples": len(data)}
                       for split, data in splits.items()],
            "dataset_size": sum(data.data.nbytes for data in splits.values())}
    return config, info


def _write_card(output: Path, name: str, task, splits: dict, retriever: str | None, origin: dict | None,
                source: str) -> Path:
    """The folder's card with config `name` added or replaced; `origin` (ORIGIN_KEY's entry) when it came from the
    Hub."""
    from huggingface_hub import DatasetCard, DatasetCardData

    path = output / CARD_FILE
    existing = DatasetCard.load(path).data.to_dict() if path.is_file() else {}
    config, info = _config_entries(name, splits)
    configs = [c for c in existing.get("configs", []) if c["config_name"] != name] + [config]
    infos = [i for i in existing.get("dataset_info", []) if i.get("config_name") != name] + [info]
    origins = [o for o in existing.get(ORIGIN_KEY, []) if o.get("config_name") != name] + ([origin] if origin else [])
    if not any(c.get("default") for c in configs):
        configs[0]["default"] = True
    private_data = any(c["config_name"].startswith("email_generation") for c in configs)
    data = DatasetCardData(
        language=["en"], **license_fields(private_data), task_categories=["text-generation"], pretty_name="LongLaMP",
        tags=["longlamp", "personalization"],
        size_categories=None, configs=configs, dataset_info=infos, **({ORIGIN_KEY: origins} if origins else {}),
    )
    rows = ["| config | splits (rows) |", "|---|---|"]
    rows += [f"| `{i['config_name']}` | " + ", ".join(f"{s['name']} ({s['num_examples']})" for s in i["splits"]) + " |"
             for i in infos]
    ranked_text = ("" if not any(c["config_name"].endswith("_ranked") for c in configs) else
                   "\nIn `*_ranked` configs each profile is sorted most relevant first by the retriever named in the "
                   "config (and in the `ranked_by` column, with its settings); `profile_scores` holds the scores.\n")
    card = DatasetCard.from_template(
        data, template_path=str(TEMPLATE), pretty_name="LongLaMP",
        description=("LongLaMP is a benchmark for personalized long-text generation: given a task input and the "
                     "profile of one user, generate the long text that this user wrote."),
        configs_table="\n".join(rows), ranked_text=ranked_text, source=source, repo_or_folder="NAMESPACE/NAME",
        first_config=configs[0]["config_name"],
        license_text=(AVOCADO_LICENSE + " " if private_data else "") + PUBLIC_LICENSE, citation=CITATION,
    )
    write_text_atomic(path, str(card))
    return path
