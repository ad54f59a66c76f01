"""A local HTTP server that answers like the Hugging Face Hub for model and dataset repositories on disk.

It serves what `huggingface_hub` (and transformers, peft and datasets through it) use to create, commit to,
list and download a repository: repo creation, branches, YAML validation, preupload, NDJSON commits (files
inline as base64; deletions), pull requests (`create_pr=1`), repo info, tree listing, paths info and HEAD/GET of
resolved files with range requests. Tests thereby exercise the real client code (HF_ENDPOINT, cache, offline
mode, tokens, retries) without a network.

As strict as the Hub where a publisher could get it wrong: creating an existing repository answers 409; a
repository's visibility is stored as created and reported by its info (`private`); `/api/validate-yaml` applies
the Hub's metadata rules (licence ids from the Hub's list, `base_model` a repo id, the `model-index` shape, no
model metadata in a dataset card) and answers 400 with the errors; the token's user (`user`) may write only to
its own namespace: elsewhere a creation or a commit answers 403, and a commit with `create_pr=1` opens a pull
request (`refs/pr/N`); each branch and pull request is its own folder, started from main's files, and a commit to
a branch that does not exist answers 404.

Every request is recorded (`created` keeps each creation's settings, `commits` each commit's files as uploaded);
`fail_commits = n` answers the next n
commits with a server error (a failure mid-upload); `garbage = True` answers every request 200 with a body that
is not JSON. Dataset repositories live in `root/<namespace>/<name>`, models in `root/_models/<namespace>/<name>`,
other revisions in `root/_refs/<kind>/<namespace>/<name>/<revision>`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

COMMIT = "0" * 39 + "1"
KIND = r"(?P<kind>models|datasets)"
REPO = r"(?P<repo>[^/]+/[^/]+)"
REV = r"(?P<rev>refs(?:/|%2F)pr(?:/|%2F)\d+|[^/]+)"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # what the Hub takes as a model id ("name", "ns/name")
# The licence ids the Hub accepts (https://huggingface.co/docs/hub/repositories-licenses).
LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++
osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1 llama3.2
llama3.3 llama4 gemma unknown other""".split())
MODEL_METADATA = ("model-index", "base_model", "library_name", "pipeline_tag")


def card_metadata(content: str) -> dict | None:
    """A README's YAML metadata, as the Hub reports it (`cardData`)."""
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    return yaml.safe_load(match.group(1)) if match else None


def metadata_errors(content: str, repo_type: str) -> list[str]:
    """The Hub's objections to a README's YAML metadata (empty when it accepts it)."""
    import yaml

    try:
        meta = card_metadata(content) or {}
    except yaml.YAMLError as error:
        return [f"invalid YAML: {error}"]
    if not isinstance(meta, dict):
        return ["the metadata must be a mapping"]
    errors = []
    licences = meta.get("license")
    for licence in licences if isinstance(licences, list) else [licences] if licences is not None else []:
        if licence not in LICENSES:
            errors.append(f'"license" must be one of the Hub\'s licence ids, not {licence!r}')
    if repo_type == "dataset":
        errors += [f'"{key}" is model metadata: a dataset card may not declare it' for key in MODEL_METADATA
                   if key in meta]
        return errors
    base = meta.get("base_model")
    for name in base if isinstance(base, list) else [base] if base is not None else []:
        if not isinstance(name, str) or not REPO_ID.match(name):
            errors.append(f'"base_model" must be a model id on the Hub, not {name!r}')
    if "model-index" in meta:
        errors += model_index_errors(meta["model-index"])
    return errors


def model_index_errors(index) -> list[str]:
    if not isinstance(index, list) or not index:
        return ['"model-index" must be a non-empty list']
    errors = []
    for model in index:
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append('"model-index[].name" must be a string')
            continue
        results = model.get("results")
        if not isinstance(results, list):
            errors.append('"model-index[].results" must be a list')
            continue
        for result in results:
            ok = (isinstance(result, dict) and isinstance(result.get("task"), dict)
                  and isinstance(result["task"].get("type"), str) and isinstance(result.get("dataset"), dict)
                  and all(isinstance(result["dataset"].get(k), str) for k in ("type", "name"))
                  and isinstance(result.get("metrics"), list) and result["metrics"]
                  and all(isinstance(m, dict) and isinstance(m.get("type"), str)
                          and isinstance(m.get("value"), (int, float, str)) and not isinstance(m.get("value"), bool)
                          for m in result["metrics"]))
            if not ok:
                errors.append('"model-index[].results[]" needs task.type, dataset.type, dataset.name and metrics '
                              "with type and value")
    return errors


class HubStandIn:
    """Serves repositories under `root`; `requests` records (method, path, auth), `commits` each commit."""

    def __init__(self, root: Path, token: str | None = None, user: str = "me"):
        self.root, self.token, self.user, self.requests, self.commits = Path(root), token, user, [], []
        self.fail_commits = 0
        self.garbage = False
        self.created: list[dict] = []  # each repo-creation request as the client sent it (name, type, visibility)
        self.private: dict[tuple[str, str], bool] = {}  # (kind, repo) -> visibility as created
        self.bodies: list[bytes] = []  # every request body, for scans of what the client sent
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._lock = threading.Lock()
        self._revisions = {COMMIT: "main"}  # commit id -> the branch or pull request it is the head of

    def commit_id(self, revision: str | None) -> str:
        """The commit a revision names (one per branch: clients then ask for files by it)."""
        revision = unquote(revision or "main")
        if revision in self._revisions:  # already a commit id
            return revision
        if revision in self._revisions.values():
            return next(sha for sha, name in self._revisions.items() if name == revision)
        sha = COMMIT if revision == "main" else hashlib.sha1(revision.encode()).hexdigest()
        return self._revisions.setdefault(sha, revision) and sha

    def repo_dir(self, repo_id: str, kind: str = "datasets", revision: str | None = None) -> Path:
        revision = unquote(revision or "main")
        revision = self._revisions.get(revision, revision)  # a commit id: its branch
        if revision != "main":
            return self.root / "_refs" / kind / repo_id / revision
        return self.root / repo_id if kind == "datasets" else self.root / "_models" / repo_id

    def repo_files(self, repo_id: str, kind: str = "datasets", revision: str | None = None) -> list[str]:
        base = self.repo_dir(repo_id, kind, revision)
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def add_repo(self, repo_id: str, kind: str = "models", private: bool = False, files: Path | None = None) -> Path:
        """A repository that exists before the test (someone else's, or one made earlier), with its visibility."""
        directory = self.repo_dir(repo_id, kind)
        if files is not None:
            shutil.copytree(files, directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.private[(kind, repo_id)] = private
        return directory

    def may_write(self, repo_id: str) -> bool:
        return repo_id.split("/")[0] == self.user

    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def do_POST(self):
                self._serve(body=True)

            def _read_body(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                hub.bodies.append(data)
                return data

            def _serve(self, body: bool):
                url = urlparse(self.path)
                path, query = unquote(url.path), parse_qs(url.query)
                hub.requests.append((self.command, path, self.headers.get("authorization")))
                payload = self._read_body() if self.command == "POST" else b""
                if hub.garbage:
                    return self._send_bytes(200, b"<html>Hub maintenance</html>", body, {"Content-Type": "text/html"})
                anonymous = path == "/api/validate-yaml"  # the Hub validates metadata for anyone
                if hub.token and not anonymous and self.headers.get("authorization") != f"Bearer {hub.token}":
                    return self._send(401, {"error": "Invalid credentials in Authorization header"}, body)
                raw = url.path  # a revision such as refs%2Fpr%2F1 stays one path segment
                writes = [
                    (r"^/api/repos/create$", self._create),
                    (r"^/api/validate-yaml$", self._validate_yaml),
                    (rf"^/api/{KIND}/{REPO}/preupload/{REV}$", self._preupload),
                    (rf"^/api/{KIND}/{REPO}/commit/{REV}$", self._commit),
                    (rf"^/api/{KIND}/{REPO}/branch/{REV}$", self._branch),
                ]
                for pattern, handler in writes:
                    match = re.match(pattern, raw)
                    if match and self.command == "POST":
                        groups = {k: unquote(v) if v else v for k, v in match.groupdict().items()}
                        return handler(payload=payload, query=query, **groups)
                reads = [
                    (rf"^/api/{KIND}/{REPO}(?:/revision/{REV})?$", self._info),
                    (rf"^/api/{KIND}/{REPO}/tree/{REV}(?:/(?P<sub>.*))?$", self._tree),
                    (rf"^/api/{KIND}/{REPO}/paths-info/{REV}$", self._paths_info),
                    (rf"^/(?P<kind>datasets)/{REPO}/resolve/{REV}/(?P<file>.+)$", self._file),
                    (rf"^/(?P<kind>){REPO}/resolve/{REV}/(?P<file>.+)$", self._file),
                ]
                for pattern, handler in reads:
                    match = re.match(pattern, raw)
                    if match:
                        groups = {k: unquote(v) if v else v for k, v in match.groupdict().items()}
                        groups["kind"] = groups["kind"] or "models"
                        if self._visible(groups["repo"], groups["kind"]):
                            if groups.get("rev") and not hub.repo_dir(groups["repo"], groups["kind"],
                                                                      groups["rev"]).is_dir():
                                return self._send(404, {"error": f"Invalid rev id: {groups['rev']}"}, body,
                                                  headers={"X-Error-Code": "RevisionNotFound"})
                            return handler(body=body, payload=payload, query=query, **groups)
                        break
                self._send(404, {"error": f"Repository or file not found: {path}"}, body,
                           headers={"X-Error-Code": "RepoNotFound"})

            def _visible(self, repo: str, kind: str) -> bool:
                """A private repository of another namespace is as absent as a missing one."""
                return hub.repo_dir(repo, kind).is_dir() and (
                    hub.may_write(repo) or not hub.private.get((kind, repo), False))

            # --- writes ------------------------------------------------------------------------------------

            def _create(self, payload, **_):
                asked = json.loads(payload or b"{}")
                hub.created.append(asked)
                kind = (asked.get("type") or "model") + "s"
                repo = f"{asked.get('organization') or hub.user}/{asked['name']}"
                if not hub.may_write(repo):
                    return self._send(403, {"error": f"You don't have the rights to create a {kind[:-1]} under the "
                                                     f"namespace \"{repo.split('/')[0]}\""}, True)
                directory = hub.repo_dir(repo, kind)
                if directory.is_dir():
                    return self._send(409, {"error": "You already created this repo", "url": self._url(kind, repo)},
                                      True)
                directory.mkdir(parents=True)
                hub.private[(kind, repo)] = asked.get("visibility") == "private" or asked.get("private") is True
                self._send(200, {"url": self._url(kind, repo), "name": repo}, True)

            def _validate_yaml(self, payload, **_):
                asked = json.loads(payload or b"{}")
                errors = metadata_errors(asked.get("content", ""), asked.get("repoType") or "model")
                self._send(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []}, True)

            def _branch(self, kind, repo, rev, payload, **_):
                if not self._visible(repo, kind):
                    return self._send(404, {"error": "Repository not found"}, True, {"X-Error-Code": "RepoNotFound"})
                if not hub.may_write(repo):
                    return self._send(403, {"error": "You don't have write access to this repository"}, True)
                target = hub.repo_dir(repo, kind, rev)
                if target.is_dir():
                    return self._send(409, {"error": "Reference already exists"}, True)
                start = json.loads(payload or b"{}").get("startingPoint")
                shutil.copytree(hub.repo_dir(repo, kind, start), target)
                self._send(200, {}, True)

            def _url(self, kind, repo):
                return f"{hub.endpoint}/{'' if kind == 'models' else kind + '/'}{repo}"

            def _write_refusal(self, kind, repo, rev, query) -> bool:
                """Answer a commit or preupload the Hub would refuse (True), or let it go ahead (False)."""
                if not self._visible(repo, kind):
                    self._send(404, {"error": "Repository not found"}, True, {"X-Error-Code": "RepoNotFound"})
                elif query.get("create_pr") == ["1"]:
                    return False
                elif not hub.may_write(repo):
                    self._send(403, {"error": "You don't have write access to this repository: open a pull "
                                              "request"}, True)
                elif not hub.repo_dir(repo, kind, rev).is_dir():
                    self._send(404, {"error": f"Invalid rev id: {rev}"}, True, {"X-Error-Code": "RevisionNotFound"})
                else:
                    return False
                return True

            def _preupload(self, kind, repo, rev, payload, query, **_):
                if self._write_refusal(kind, repo, rev, query):
                    return
                files = json.loads(payload or b"{}").get("files", [])
                answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                          for f in files]
                self._send(200, {"files": answer, "commitOid": COMMIT}, True)

            def _commit(self, kind, repo, rev, payload, query, **_):
                if self._write_refusal(kind, repo, rev, query):
                    return
                with hub._lock:
                    if hub.fail_commits:
                        hub.fail_commits -= 1
                        return self._send(500, {"error": "Internal Error - the stand-in was told to fail"}, True)
                    pull_request = None
                    if query.get("create_pr") == ["1"]:
                        pulls = hub.repo_dir(repo, kind, "refs/pr/1").parent
                        number = 1 + (sum(1 for _ in pulls.iterdir()) if pulls.is_dir() else 0)
                        rev, pull_request = f"refs/pr/{number}", number
                        shutil.copytree(hub.repo_dir(repo, kind), hub.repo_dir(repo, kind, rev))
                directory = hub.repo_dir(repo, kind, rev)
                lines = [json.loads(line) for line in payload.decode().splitlines() if line.strip()]
                operations, uploaded = [], {}
                for line in lines:
                    value = line.get("value", {})
                    if line["key"] == "file":
                        target = directory / value["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        uploaded[value["path"]] = base64.b64decode(value["content"])
                        target.write_bytes(uploaded[value["path"]])
                        operations.append(("add", value["path"]))
                    elif line["key"] == "deletedFile":
                        (directory / value["path"]).unlink(missing_ok=True)
                        operations.append(("delete", value["path"]))
                    elif line["key"] == "deletedFolder":
                        shutil.rmtree(directory / value["path"], ignore_errors=True)
                        operations.append(("delete", value["path"]))
                    elif line["key"] == "lfsFile":
                        return self._send(400, {"error": "the stand-in takes files inline only"}, True)
                hub.commits.append({"repo": repo, "kind": kind, "revision": rev, "operations": operations,
                                    "pull_request": pull_request, "files": uploaded})
                url = f"{self._url(kind, repo)}/discussions/{pull_request}" if pull_request else None
                sha = hub.commit_id(rev)
                self._send(200, {"commitUrl": f"{self._url(kind, repo)}/commit/{sha}", "commitOid": sha,
                                 "pullRequestUrl": url}, True)

            # --- reads -------------------------------------------------------------------------------------

            def _entry(self, kind: str, repo: str, name: str, rev: str | None = None) -> dict:
                data = (hub.repo_dir(repo, kind, rev) / name).read_bytes()
                return {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}

            def _info(self, kind, repo, rev=None, body=True, **_):
                siblings = [{"rfilename": name} for name in hub.repo_files(repo, kind, rev)]
                card = hub.repo_dir(repo, kind, rev) / "README.md"
                self._send(200, {"id": repo, "sha": hub.commit_id(rev), "siblings": siblings,
                                 "cardData": card_metadata(card.read_text()) if card.is_file() else None,
                                 "private": hub.private.get((kind, repo), False),
                                 "lastModified": "2024-01-01T00:00:00.000Z"}, body)

            def _tree(self, kind, repo, rev, sub=None, body=True, query=None, **_):
                prefix = (sub or "").strip("/")
                recursive = (query or {}).get("recursive", ["false"])[0].lower() in ("1", "true")
                entries, folders = [], set()
                for name in hub.repo_files(repo, kind, rev):
                    if prefix and not name.startswith(prefix + "/"):
                        continue
                    rest = name[len(prefix) + 1:] if prefix else name
                    if recursive or "/" not in rest:
                        entries.append(self._entry(kind, repo, name, rev))
                    else:
                        folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                entries += [{"type": "directory", "path": f, "oid": COMMIT, "size": 0} for f in sorted(folders)]
                self._send(200, entries, body)

            def _paths_info(self, kind, repo, rev, payload=b"", body=True, **_):
                raw = payload.decode()
                asked = json.loads(raw).get("paths", []) if raw.startswith("{") else re.findall(r"paths=([^&]+)", raw)
                names = set(hub.repo_files(repo, kind, rev))
                self._send(200, [self._entry(kind, repo, unquote(p), rev) for p in asked if unquote(p) in names],
                           body)

            def _file(self, kind, repo, rev, file, body=True, **_):
                target = hub.repo_dir(repo, kind, rev) / file
                if not target.is_file():
                    return self._send(404, {"error": "Entry not found"}, body,
                                      headers={"X-Error-Code": "EntryNotFound"})
                data = target.read_bytes()
                start, end, status = 0, len(data) - 1, 200
                range_header = self.headers.get("range")
                if range_header:
                    first, _, last = range_header.removeprefix("bytes=").partition("-")
                    start = int(first) if first else len(data) - int(last)
                    end = min(int(last), len(data) - 1) if (first and last) else len(data) - 1
                    status = 206
                chunk = data[start : end + 1]
                headers = {
                    "X-Repo-Commit": hub.commit_id(rev),
                    "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                    "Content-Type": "application/octet-stream",
                    "Accept-Ranges": "bytes",
                }
                if status == 206:
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                self._send_bytes(status, chunk, body, headers)

            def _send(self, status, payload, body, headers=None):
                headers = {"Content-Type": "application/json", "X-Repo-Commit": COMMIT, **(headers or {})}
                self._send_bytes(status, json.dumps(payload).encode(), body, headers)

            def _send_bytes(self, status, data, body, headers):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler

    @contextmanager
    def running(self):
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
