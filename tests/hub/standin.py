"""A local stand-in for the Hugging Face Hub HTTP API: just the endpoints ``huggingface_hub`` calls for
``create_repo``, ``upload_folder`` (preupload + commit; every file answered "regular", so its bytes come inline,
base64, in the commit's ndjson) and for downloads (``repo_info``, ``list_repo_tree``, ``resolve``).

Repos live in memory: ``{repo_id: {path: bytes}}``, one commit each (a new commit replaces the named files).
Every request is logged as ``(method, path)`` so tests can assert what was called.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class HubStandIn:
    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []
        self.validated: list[str] = []  # README.md contents sent to /api/validate-yaml
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def sha(self, repo: str) -> str:
        return self.commits.get(repo, "0" * 40)


def _handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, what: str) -> None:
            self._json({"error": f"{what} not found"}, 404, {"X-Error-Code": "RepoNotFound"})

        def do_POST(self):
            path = unquote(urlsplit(self.path).path)
            hub.log.append(("POST", path))
            body = self._body()
            if path == "/api/validate-yaml":
                return self._validate(json.loads(body)["content"])
            if path == "/api/repos/create":
                req = json.loads(body)
                repo = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                hub.repos.setdefault(repo, {})
                return self._json({"url": f"{hub.url}/{repo}", "name": repo})
            parts = path.split("/")  # /api/models/NS/NAME/(preupload|commit)/REV
            if len(parts) == 7 and parts[1:3] == ["api", "models"] and parts[5] in ("preupload", "commit"):
                repo = f"{parts[3]}/{parts[4]}"
                if repo not in hub.repos:
                    return self._not_found(repo)
                if parts[5] == "preupload":
                    files = json.loads(body)["files"]
                    return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        hub.repos[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] != "header":
                        return self._json({"error": f"unsupported commit item {item['key']}"}, 400)
                oid = hashlib.sha1(repr(sorted(hub.repos[repo].items())).encode()).hexdigest()
                hub.commits[repo] = oid
                return self._json({"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid})
            return self._not_found(path)

        def _validate(self, content: str) -> None:
            """The Hub's card check, as far as tessera's metadata goes: YAML front matter whose library_name and
            pipeline_tag are strings and whose tags are a list of strings (400 with ``errors`` otherwise)."""
            from huggingface_hub import ModelCard

            errors = []
            try:
                data = ModelCard(content, ignore_metadata_errors=False).data.to_dict()
            except Exception as exc:  # noqa: BLE001 - any parse failure is a validation error
                data, errors = {}, [{"message": f"unparsable metadata: {exc}"}]
            for key in ("library_name", "pipeline_tag"):
                if not isinstance(data.get(key), str):
                    errors.append({"message": f"{key} must be a string"})
            tags = data.get("tags")
            if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
                errors.append({"message": "tags must be a list of strings"})
            hub.validated.append(content)
            self._json({"errors": errors, "warnings": []}, 400 if errors else 200)

        def _file(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.log.append(("HEAD" if head else "GET", path))
            parts = path.strip("/").split("/")
            if len(parts) >= 4 and parts[0] == "api" and parts[1] == "models":
                repo = f"{parts[2]}/{parts[3]}"
                if repo not in hub.repos:
                    return self._not_found(repo)
                files = hub.repos[repo]
                if len(parts) >= 6 and parts[4] == "revision":
                    return self._json({"id": repo, "modelId": repo, "sha": hub.sha(repo), "private": False,
                                       "siblings": [{"rfilename": f} for f in sorted(files)]})
                if len(parts) >= 6 and parts[4] == "tree":
                    return self._json([{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                       for f, b in sorted(files.items())])
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, filename = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
                data = hub.repos.get(repo, {}).get(filename)
                if data is None:
                    return self._json({"error": "entry not found"}, 404, {"X-Error-Code": "EntryNotFound"})
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", hub.sha(repo))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                return None
            return self._not_found(path)

        def do_GET(self):
            self._file(head=False)

        def do_HEAD(self):
            self._file(head=True)

    return Handler
