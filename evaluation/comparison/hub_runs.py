"""Runs the toolkit published on the Hub, fetched into the Hub cache so that the leaderboard reads them as folders.

An argument that is not an existing local folder and has the form of a repository id, `owner/name` or
`owner/name@revision` (`datasets/owner/name...` for a dataset repository only), is looked up on the Hub: as a model
repository first (zero-shot results under `longlamp/<config>/`, or a trained model with its record and test
predictions), then as a dataset repository (where `--hub_repo_type dataset` publishes results). Only the files the
leaderboard reads are downloaded (`ALLOW`, the names publishing/hub.py `stage_run` gives them; never weights or
prompts), by `huggingface_hub.snapshot_download` into the usual cache: HF_ENDPOINT, HF_TOKEN (or the saved login),
HF_HOME and HF_HUB_OFFLINE apply, and the token is never printed or written. Every request gives up after the
toolkit's Hub timeout (LONGLAMP_HUB_TIMEOUT, longlamp_cli `limit_hub_requests`), and the error says so.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from evaluation.comparison.runs import holds_run
from longlamp_cli import hub_timeout, limit_hub_requests
from longlamp_errors import RunFolderError
from longlamp_runs import (
    PER_SAMPLE_FILE,
    PUBLISHED_RESULTS_DIR,
    PUBLISHED_SUMMARY_FILE,
    TEST_PREDICTIONS_FILE,
    TRAINING_RECORD_FILE,
)

logger = logging.getLogger(__name__)
REPO_ARGUMENT = re.compile(r"^(?:(?P<kind>datasets|models)/)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)"
                           r"(?:@(?P<revision>[^\s@]+))?$")
# fnmatch patterns: "*" crosses folders (no_profile/, longlamp/...)
ALLOW = (PUBLISHED_SUMMARY_FILE, f"*/{PUBLISHED_SUMMARY_FILE}", PER_SAMPLE_FILE, f"*/{PER_SAMPLE_FILE}",
         TRAINING_RECORD_FILE, TEST_PREDICTIONS_FILE)
WHAT_A_RUN_HOLDS = (f"{PUBLISHED_SUMMARY_FILE} with {PER_SAMPLE_FILE}, {PUBLISHED_RESULTS_DIR}/<config>/"
                    f"{PUBLISHED_SUMMARY_FILE}, or {TRAINING_RECORD_FILE} with {TEST_PREDICTIONS_FILE}")


def repo_argument(argument: str) -> tuple[str, str | None, tuple[str, ...]] | None:
    """(repository id, revision, repository types to try) when the argument has a repository id's form."""
    match = REPO_ARGUMENT.match(str(argument))
    if match is None:
        return None
    kind = match["kind"]
    return match["repo"], match["revision"], ("model", "dataset") if kind is None else (kind.removesuffix("s"),)


def _message(error: Exception) -> str:
    """The error's first line, with the token (should a server echo it) masked."""
    from huggingface_hub import get_token

    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    token = get_token()
    return message.replace(token, "***") if token else message


def _no_answer(error: BaseException) -> str | None:
    """What to say when the error, or one it came from, is a Hub request that ran out of time."""
    import httpx2

    while error is not None:
        if isinstance(error, httpx2.TimeoutException):
            return f"no answer within {hub_timeout():g} s (LONGLAMP_HUB_TIMEOUT)"
        error = error.__cause__ or error.__context__
    return None


def fetch_run(argument: str) -> Path:
    """The local snapshot (in the Hub cache) of the files a published run's leaderboard needs."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from publishing.hub import _network_errors

    limit_hub_requests()
    repo_id, revision, kinds = repo_argument(argument)
    found, unreachable = [], None  # (repository type, what was wrong with it); why neither Hub nor cache answered
    for kind in kinds:
        logger.info("reading %s from the Hub (%s repository)", argument, kind)
        try:
            folder = Path(snapshot_download(repo_id, repo_type=kind, revision=revision, allow_patterns=list(ALLOW)))
        except RepositoryNotFoundError:  # also a private repository the token may not read
            continue
        except RevisionNotFoundError:
            found.append((kind, f"has no revision {revision!r}"))
            continue
        except LocalEntryNotFoundError as error:  # offline or unreachable, and not in the cache: maybe the other type
            unreachable = error
            continue
        except HFValidationError as error:
            raise RunFolderError(f"{argument}: not a local folder, nor a valid Hub repository id ({_message(error)})"
                                 ) from None
        except ValueError as error:  # a JSON answer that is not JSON: a server, but not the Hub
            raise RunFolderError(f"{argument}: {constants.ENDPOINT} did not answer like the Hub for the {kind} "
                                 f"repository {repo_id} ({_message(error)}): is HF_ENDPOINT right?") from None
        except _network_errors() as error:
            raise RunFolderError(f"{argument}: downloading the {kind} repository {repo_id} failed: "
                                 f"{_no_answer(error) or _message(error)}") from None
        if holds_run(folder):
            return folder
        found.append((kind, f"holds no run published by this toolkit (expected {WHAT_A_RUN_HOLDS})"))
    if unreachable is not None and not found:
        raise RunFolderError(f"{argument}: not a local folder, and the Hub ({constants.ENDPOINT}) could not be read "
                             f"for {repo_id} nor the cache used: {_no_answer(unreachable) or _message(unreachable)}")
    if found:
        raise RunFolderError("; ".join(f"{argument}: the {kind} repository {repo_id} on the Hub {problem}"
                                       for kind, problem in found))
    raise RunFolderError(f"{argument}: no such run folder, and no {' or '.join(kinds)} repository {repo_id} on the Hub "
                         f"({constants.ENDPOINT}) that this token may read")
