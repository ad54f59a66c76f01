"""The publishing flags every command shares (one argument group), and the call they lead to."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path

from longlamp_errors import PublishError


@dataclass(frozen=True)
class HubOptions:
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_repo_type: str = "model"
    hub_private: bool = False
    hub_revision: str | None = None
    hub_token: str | None = field(default=None, repr=False)  # never shown
    public_despite_license: bool = False


def add_publishing_arguments(parser: argparse.ArgumentParser, with_push_flag: bool = True) -> None:
    group = parser.add_argument_group("publishing")
    if with_push_flag:
        group.add_argument("--push_to_hub", action="store_true", help="publish the run to the Hub when it ends")
    group.add_argument("--hub_model_id", help="Hub repository NAMESPACE/NAME to publish to")
    group.add_argument("--hub_repo_type", choices=("model", "dataset"), default="model",
                       help="model: the evaluated model's repository (results under longlamp/<config>/); dataset: "
                            "a results repository (default: model)")
    group.add_argument("--hub_private", "--private", action="store_true", help="create the repository as private")
    group.add_argument("--hub_revision", help="branch to push to (default: main)")
    group.add_argument("--hub_token", help="Hub token (default: HF_TOKEN or the saved login); never written or shown")
    group.add_argument("--public_despite_license", action="store_true",
                       help="push an email (Avocado, LDC-licensed) run publicly anyway")


def split_publishing(values: dict) -> tuple[dict, HubOptions]:
    """(the other arguments, the publishing ones) from a parsed namespace's dict."""
    names = {spec.name for spec in fields(HubOptions)}
    hub = HubOptions(**{k: v for k, v in values.items() if k in names})
    return {k: v for k, v in values.items() if k not in names}, hub


def publish(run_dir: str | Path, hub: HubOptions, dry_run_dir: str | Path | None = None) -> str:
    """Push `run_dir` as `hub` says (or stage it into `dry_run_dir`); returns the repository URL or the folder."""
    from publishing.hub import push_run

    if not hub.hub_model_id:
        raise PublishError("publishing needs --hub_model_id NAMESPACE/NAME")
    return push_run(run_dir, hub.hub_model_id, repo_type=hub.hub_repo_type, private=hub.hub_private,
                    revision=hub.hub_revision, token=hub.hub_token, dry_run_dir=dry_run_dir,
                    public_despite_license=hub.public_despite_license)
