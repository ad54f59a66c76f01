"""A local HTTP server that answers like the Hugging Face Hub for model and dataset repositories on disk.

It serves what `huggingface_hub` (and transformers, peft and datasets through it) use to create, commit to,
list and download a repository: repo creation, branches, YAML validation, preupload, NDJSON commits (files
inline as base64; deletions), repo info, tree listing, paths info and HEAD/GET of resolved files with range
requests. Tests thereby exercise the real client code (HF_ENDPOINT, cache, offline mode, tokens, retries)
without a network. Every request is recorded (`created` keeps each creation's settings); `fail_commits = n`
answers the next n commits with a server error (a failure mid-upload). Dataset repositories live in
`root/<namespace>/<name>`, models in `root/_models/<namespace>/<name>`; all revisions share one folder (the
commits record which revision each named).
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


class HubStandIn:
    """Serves repositories under `root`; `requests` records (method, path, auth), `commits` each commit."""

    def __init__(self, root: Path, token: str | None = None):
        self.root, self.token, self.requests, self.commits = Path(root), token, [], []
        self.fail_commits = 0
        self.created: list[dict] = []  # each repo-creation request as the client sent it (name, type, private)
        self.bodies: list[bytes] = []  # every request body, for scans of what the client sent
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._lock = threading.Lock()

    def repo_dir(self, repo_id: str, kind: str = "datasets") -> Path:
        return self.root / repo_id if kind == "datasets" else self.root / "_models" / repo_id

    def repo_files(self, repo_id: str, kind: str = "datasets") -> list[str]:
        base = self.repo_dir(repo_id, kind)
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

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
                if hub.token and self.headers.get("authorization") != f"Bearer {hub.token}":
                    return self._send(401, {"error": "Invalid credentials in Authorization header"}, body)
                writes = [
                    (r"^/api/repos/create$", self._create),
                    (r"^/api/validate-yaml$", lambda **kw: self._send(200, {"errors": [], "warnings": []}, True)),
                    (rf"^/api/{KIND}/{REPO}/preupload/(?P<rev>[^/]+)$", self._preupload),
                    (rf"^/api/{KIND}/{REPO}/commit/(?P<rev>[^/]+)$", self._commit),
                    (rf"^/api/{KIND}/{REPO}/branch/(?P<rev>[^/]+)$", lambda **kw: self._send(200, {}, True)),
                ]
                for pattern, handler in writes:
                    match = re.match(pattern, path)
                    if match:
                        return handler(payload=payload, **match.groupdict())
                reads = [
                    (rf"^/api/{KIND}/{REPO}(?:/revision/(?P<rev>[^/]+))?$", self._info),
                    (rf"^/api/{KIND}/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?$", self._tree),
                    (rf"^/api/{KIND}/{REPO}/paths-info/(?P<rev>[^/]+)$", self._paths_info),
                    (rf"^/(?P<kind>datasets)/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", self._file),
                    (rf"^/(?P<kind>){REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", self._file),
                ]
                for pattern, handler in reads:
                    match = re.match(pattern, path)
                    if match:
                        groups = match.groupdict()
                        groups["kind"] = groups["kind"] or "models"
                        if hub.repo_dir(groups["repo"], groups["kind"]).is_dir():
                            return handler(body=body, payload=payload, query=query, **groups)
                        break
                self._send(404, {"error": f"Repository or file not found: {path}"}, body,
                           headers={"X-Error-Code": "RepoNotFound"})

            # --- writes ------------------------------------------------------------------------------------

            def _create(self, payload, **_):
                asked = json.loads(payload or b"{}")
                hub.created.append(asked)
                kind = (asked.get("type") or "model") + "s"
                repo = f"{asked.get('organization') or 'user'}/{asked['name']}"
                directory = hub.repo_dir(repo, kind)
                if directory.is_dir():
                    return self._send(409, {"error": "You already created this repo", "url": self._url(kind, repo)},
                                      True)
                directory.mkdir(parents=True)
                self._send(200, {"url": self._url(kind, repo), "name": repo}, True)

            def _url(self, kind, repo):
                return f"{hub.endpoint}/{'' if kind == 'models' else kind + '/'}{repo}"

            def _preupload(self, kind, repo, rev, payload):
                files = json.loads(payload or b"{}").get("files", [])
                answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                          for f in files]
                self._send(200, {"files": answer, "commitOid": COMMIT}, True)

            def _commit(self, kind, repo, rev, payload):
                directory = hub.repo_dir(repo, kind)
                if not directory.is_dir():
                    return self._send(404, {"error": "Repository not found"}, True, {"X-Error-Code": "RepoNotFound"})
                with hub._lock:
                    if hub.fail_commits:
                        hub.fail_commits -= 1
                        return self._send(500, {"error": "Internal Error - the stand-in was told to fail"}, True)
                lines = [json.loads(line) for line in payload.decode().splitlines() if line.strip()]
                operations = []
                for line in lines:
                    value = line.get("value", {})
                    if line["key"] == "file":
                        target = directory / value["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(base64.b64decode(value["content"]))
                        operations.append(("add", value["path"]))
                    elif line["key"] == "deletedFile":
                        (directory / value["path"]).unlink(missing_ok=True)
                        operations.append(("delete", value["path"]))
                    elif line["key"] == "deletedFolder":
                        shutil.rmtree(directory / value["path"], ignore_errors=True)
                        operations.append(("delete", value["path"]))
                    elif line["key"] == "lfsFile":
                        return self._send(400, {"error": "the stand-in takes files inline only"}, True)
                hub.commits.append({"repo": repo, "kind": kind, "revision": rev, "operations": operations})
                self._send(200, {"commitUrl": f"{self._url(kind, repo)}/commit/{COMMIT}", "commitOid": COMMIT,
                                 "pullRequestUrl": None}, True)

            # --- reads -------------------------------------------------------------------------------------

            def _entry(self, kind: str, repo: str, name: str) -> dict:
                data = (hub.repo_dir(repo, kind) / name).read_bytes()
                return {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}

            def _info(self, kind, repo, rev=None, body=True, **_):
                siblings = [{"rfilename": name} for name in hub.repo_files(repo, kind)]
                self._send(200, {"id": repo, "sha": COMMIT, "siblings": siblings, "private": False,
                                 "lastModified": "2024-01-01T00:00:00.000Z"}, body)

            def _tree(self, kind, repo, rev, sub=None, body=True, query=None, **_):
                prefix = (sub or "").strip("/")
                recursive = (query or {}).get("recursive", ["false"])[0].lower() in ("1", "true")
                entries, folders = [], set()
                for name in hub.repo_files(repo, kind):
                    if prefix and not name.startswith(prefix + "/"):
                        continue
                    rest = name[len(prefix) + 1:] if prefix else name
                    if recursive or "/" not in rest:
                        entries.append(self._entry(kind, repo, name))
                    else:
                        folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                entries += [{"type": "directory", "path": f, "oid": COMMIT, "size": 0} for f in sorted(folders)]
                self._send(200, entries, body)

            def _paths_info(self, kind, repo, rev, payload=b"", body=True, **_):
                raw = payload.decode()
                asked = json.loads(raw).get("paths", []) if raw.startswith("{") else re.findall(r"paths=([^&]+)", raw)
                names = set(hub.repo_files(repo, kind))
                self._send(200, [self._entry(kind, repo, unquote(p)) for p in asked if unquote(p) in names], body)

            def _file(self, kind, repo, rev, file, body=True, **_):
                target = hub.repo_dir(repo, kind) / file
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
                    "X-Repo-Commit": COMMIT,
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
