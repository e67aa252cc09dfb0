"""``bioscan5m push`` against a local stand-in for the Hugging Face Hub (a loopback HTTP server)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from bioscan5m.cli import main
from bioscan5m.models.registry import create_dna_model

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeHub:
    """The Hub endpoints ``HfApi.create_repo`` + ``upload_folder`` call, on 127.0.0.1 only.

    Repository creation, the model card's metadata check (its YAML front matter must parse to a mapping),
    the pre-upload check (every file is "regular": its bytes travel in the commit) and the commit (NDJSON:
    a header, then one base64 file per line). It records the requests, the cards' metadata and the files
    received (``files[path] = bytes``) and stops by itself after ``lifetime`` seconds at the latest.
    """

    def __init__(self, lifetime: float = 60.0) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.files: dict[str, bytes] = {}
        self.created: list[dict] = []
        self.metadata: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.requests.append(("POST", self.path, self.headers.get("Authorization")))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    hub.created.append(payload)
                    self._json({"url": f"{hub.url}/{payload['organization']}/{payload['name']}"})
                elif path == "/api/validate-yaml":
                    front_matter = json.loads(body)["content"].split("---\n")[1]
                    try:
                        metadata = yaml.safe_load(front_matter)
                    except yaml.YAMLError as error:
                        self._json({"errors": [{"message": str(error)}]}, status=400)
                        return
                    hub.metadata.append(metadata)
                    self._json({"errors": [], "warnings": []})
                elif "/preupload/" in path:
                    files = json.loads(body)["files"]
                    self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                          for f in files]})
                elif "/commit/" in path:
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    repo = path.split("/api/models/")[1].split("/commit/")[0]
                    self._json({"commitUrl": f"{hub.url}/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40})
                else:
                    self._json({"error": f"not implemented: {path}"}, status=404)

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path, self.headers.get("Authorization")))
                self._json({"error": f"not implemented: {self.path}"}, status=404)

            def _json(self, value: dict, status: int = 200) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(lifetime, self.server.shutdown)

    def __enter__(self):  # -> FakeHub
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    torch.manual_seed(0)
    folder = create_dna_model("4-2-2-tiny", hidden=32, intermediate=64, layers=1).save_pretrained(tmp_path / "model")
    (folder / "checkpoints" / "step-00000002").mkdir(parents=True)
    (folder / "checkpoints" / "step-00000002" / "optimizer.safetensors").write_bytes(b"optimizer state")
    (folder / "train_log.jsonl").write_text('{"step": 2, "loss": 5.5}\n')
    return folder


def test_push_uploads_the_folder_byte_identical(model_dir, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as hub:
        code = main(["push", "--model", str(model_dir), "--repo", "lab/barcodebert-tiny", "--private",
                     "--token", "hf_test_token", "--endpoint", hub.url])
        out, err = capsys.readouterr()
    assert code == 0, err
    assert f"uploaded {model_dir} to lab/barcodebert-tiny: {hub.url}/lab/barcodebert-tiny/commit/" in out
    assert hub.created == [{"name": "barcodebert-tiny", "organization": "lab", "visibility": "private",
                            "type": "model"}]
    expected = {"config.json", "model.safetensors", "kmer_tokenizer.json", "tokenizer.json",
                "tokenizer_config.json", "README.md", "train_log.jsonl"}
    assert set(hub.files) == expected  # the checkpoints stay home
    assert hub.metadata[0]["library_name"] == "transformers" and "dna" in hub.metadata[0]["tags"]
    for name, data in hub.files.items():
        assert data == (model_dir / name).read_bytes(), name
    assert {auth for _, _, auth in hub.requests} == {"Bearer hf_test_token"}
    assert {path.split("?")[0] for method, path, _ in hub.requests} == {
        "/api/repos/create", "/api/validate-yaml", "/api/models/lab/barcodebert-tiny/preupload/main",
        "/api/models/lab/barcodebert-tiny/commit/main"}


def test_push_errors_are_one_line(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (tmp_path / "empty").mkdir()
    with FakeHub() as hub:
        for argv, message in [
            (["--model", str(tmp_path / "missing"), "--repo", "lab/x"], "missing': no such folder"),
            (["--model", str(tmp_path / "empty"), "--repo", "lab/x"], "not a saved model folder (no config.json)"),
            (["--model", str(model_dir), "--repo", "lab/bad name!"], "bad repository id 'lab/bad name!'"),
            (["--model", str(model_dir), "--repo", "a/b/c"], "bad repository id 'a/b/c'"),
            (["--model", str(model_dir), "--repo", "just-a-name"], "write it as owner/name"),
        ]:
            code = main(["push", *argv, "--endpoint", hub.url, "--token", "t"])
            err = capsys.readouterr().err
            assert code == 2 and message in err, err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert hub.requests == []  # every mistake was caught before any request
