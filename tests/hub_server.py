"""A local HTTP server that answers like the Hugging Face Hub for dataset repositories on disk.

It serves the read endpoints that `huggingface_hub` uses to list and download a repository (repo info,
tree listing, paths info, HEAD/GET of resolved files with range requests), so tests exercise the real
client code (HF_ENDPOINT, cache, offline mode, tokens) without a network. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0" * 39 + "1"


class HubStandIn:
    """Serves `root/<namespace>/<name>/...` as dataset repositories; `requests` records (method, path, auth)."""

    def __init__(self, root: Path, token: str | None = None):
        self.root, self.token, self.requests = Path(root), token, []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def repo_files(self, repo_id: str) -> list[str]:
        base = self.root / repo_id
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

            def _serve(self, body: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path, self.headers.get("authorization")))
                if hub.token and self.headers.get("authorization") != f"Bearer {hub.token}":
                    return self._send(401, {"error": "Invalid credentials"}, body)
                routes = [
                    (r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$", self._info),
                    (r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?$", self._tree),
                    (r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$", self._paths_info),
                    (r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", self._file),
                ]
                for pattern, handler in routes:
                    match = re.match(pattern, path)
                    if match and (hub.root / match.group("repo")).is_dir():
                        return handler(body=body, **match.groupdict())
                self._send(404, {"error": f"Repository or file not found: {path}"}, body,
                           headers={"X-Error-Code": "RepoNotFound"})

            def _entry(self, repo: str, name: str) -> dict:
                data = (hub.root / repo / name).read_bytes()
                return {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}

            def _info(self, repo, rev=None, body=True):
                siblings = [{"rfilename": name} for name in hub.repo_files(repo)]
                self._send(200, {"id": repo, "sha": COMMIT, "siblings": siblings, "private": False}, body)

            def _tree(self, repo, rev, sub=None, body=True):
                prefix = (sub or "").strip("/")
                entries = [self._entry(repo, name) for name in hub.repo_files(repo)
                           if not prefix or name.startswith(prefix + "/")]
                self._send(200, entries, body)

            def _paths_info(self, repo, rev, body=True):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                asked = json.loads(raw).get("paths", []) if raw.startswith("{") else re.findall(r"paths=([^&]+)", raw)
                names = set(hub.repo_files(repo))
                self._send(200, [self._entry(repo, unquote(p)) for p in asked if unquote(p) in names], body)

            def _file(self, repo, rev, file, body=True):
                target = hub.root / repo / file
                if not target.is_file():
                    return self._send(404, {"error": "Entry not found"}, body, headers={"X-Error-Code": "EntryNotFound"})
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
