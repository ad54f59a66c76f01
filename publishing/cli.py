"""The publishing flags, as an argument dataclass (longlamp_cli explains how commands combine them), and the call
they lead to."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from longlamp_cli import Switch, arg
from longlamp_errors import PublishError
from publishing.hub import REPO_TYPES


class PushToHub(Switch):
    """`--push_to_hub`, or `--push_to_hub NAMESPACE/NAME` (export_dataset.py's older spelling): the same as
    `--push_to_hub --hub_model_id NAMESPACE/NAME`."""

    def __init__(self, option_strings, dest, negations=(), default=False, required=False, help=None):
        argparse.Action.__init__(self, [*option_strings, *negations], dest, nargs="?", const=True, default=default,
                                 required=required, help=help, metavar="NAMESPACE/NAME")
        self.negations = frozenset(negations)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.negations:
            if values is not None:
                parser.error(f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
            return
        setattr(namespace, self.dest, True)
        if isinstance(values, str):
            given = getattr(namespace, "hub_model_id", None)
            if given not in (None, values):
                parser.error(f"--push_to_hub {values} and --hub_model_id {given} name two repositories; give one")
            namespace.hub_model_id = values


@dataclass(kw_only=True)
class HubRepositoryArguments:
    """The Hub repository something is published to, and with what rights."""

    _argument_group_name = "publishing"
    hub_model_id: str | None = arg("Hub repository NAMESPACE/NAME to publish to (default: none; needed to publish)",
                                   default=None)
    hub_private: bool = arg("create the repository as private", default=False, aliases=("--private",))
    hub_revision: str | None = arg("branch to push to (default: main)", default=None)
    hub_token: str | None = arg("Hub token (default: HF_TOKEN or the saved login); never written or shown",
                                default=None, secret=True)
    create_pr: bool = arg("open a pull request instead of committing (how results reach a repository you do not own; "
                          "chosen automatically, with a message, when the token may not write to it)", default=False)
    public_despite_license: bool = arg("push the email task (Avocado, LDC-licensed) publicly anyway: you answer for "
                                       "the LDC licence", default=False)


@dataclass(kw_only=True)
class HubArguments(HubRepositoryArguments):
    """Where and how a run is published on the Hugging Face Hub, and whether it is."""

    push_to_hub: bool = arg("publish to the Hub when the run ends (--push_to_hub NAMESPACE/NAME is short for "
                            "--push_to_hub --hub_model_id NAMESPACE/NAME)", default=False, action=PushToHub)
    hub_repo_type: str = arg("model: the evaluated model's repository (results under longlamp/<config>/); dataset: "
                             "a results repository", default="model", choices=REPO_TYPES)


def publish(run_dir: str | Path, hub, dry_run_dir: str | Path | None = None) -> str:
    """Push `run_dir` as `hub` (HubArguments' fields) says, or stage it into `dry_run_dir`; returns the repository
    URL or the folder."""
    from publishing.hub import push_run

    if not hub.hub_model_id:
        raise PublishError("publishing needs --hub_model_id NAMESPACE/NAME")
    return push_run(run_dir, hub.hub_model_id, repo_type=hub.hub_repo_type, private=hub.hub_private,
                    revision=hub.hub_revision, token=hub.hub_token, dry_run_dir=dry_run_dir,
                    public_despite_license=hub.public_despite_license, create_pr=hub.create_pr)
