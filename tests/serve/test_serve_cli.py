"""``bioscan5m serve`` as a command: the install hint without the extra, the warning for other hosts, a busy
port refused before any work, and the embedded default made once in the cache folder and reused."""

from __future__ import annotations

import importlib.util
import socket

import pytest
import uvicorn

from bioscan5m.cli import main
from bioscan5m.serve import app as serve_app
from bioscan5m.serve import context as serve_context
from bioscan5m.serve.settings import ServeSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Started:
    """Stands in for building the context and running uvicorn: records what the command asked for."""

    def __init__(self, monkeypatch) -> None:
        self.settings = None
        self.run = None
        monkeypatch.setattr(serve_context, "build_context", self.build)
        monkeypatch.setattr(serve_app, "create_app", lambda context: "the app")
        monkeypatch.setattr(uvicorn, "run", lambda app, **options: setattr(self, "run", options))

    def build(self, settings):
        self.settings = settings
        return self

    def close(self) -> None:
        pass


def test_without_the_serve_extra_one_line_says_what_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bioscan5m serve: error: the web app needs FastAPI and uvicorn: pip install 'bioscan5m[serve]'"]


def test_loopback_by_default_and_a_warning_for_any_other_host(monkeypatch, capsys, real_barcodes):
    started = Started(monkeypatch)
    port = free_port()
    assert main(["serve", "--port", str(port), "--reference", str(real_barcodes["reference"]), "--taxonomy",
                 str(real_barcodes["taxonomy"]), "--max-queries", "7", "--map-reducer", "pca"]) == 0
    captured = capsys.readouterr()
    assert started.run == {"host": "127.0.0.1", "port": port, "log_level": "warning"}
    assert "warning" not in captured.err and f"http://127.0.0.1:{port}/" in captured.out
    assert started.settings.reference == real_barcodes["reference"] and started.settings.limits.max_queries == 7
    assert started.settings.map_reducer == "pca" and not started.settings.is_default

    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "--host 127.0.0.1" in err
    assert started.run["host"] == "0.0.0.0" and started.settings.is_default


def test_a_busy_port_is_refused_before_any_work(monkeypatch, capsys):
    started = Started(monkeypatch)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot listen on 127.0.0.1" in err and len(err.splitlines()) == 1
    assert started.settings is None  # nothing was indexed or built


def test_the_default_is_made_once_in_the_cache_folder_and_reused(tmp_path, monkeypatch, capsys, fast_identifier):
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    settings = ServeSettings(demo_records=300, demo_model_steps=2, map_reducer="pca", identifier_options=fast_identifier)
    context = serve_context.build_context(settings)
    assert context.photos.state == "building"  # identify works while the photo model is made
    assert context.photos.done.wait(300) and context.photos.state == "ready", context.photos.status()
    assert context.map.done.wait(120) and context.map.state == "ready"
    folder = tmp_path / "cache" / "serve" / "demo.300-seed0"
    assert context.data == folder / "data" and (folder / "clibd" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing outside the cache folder
    assert "writing the demo's synthetic dataset" in capsys.readouterr().out
    context.close()
    made = {p: p.stat().st_mtime_ns for p in (folder / "data" / "demo_data.json", folder / "clibd" / "config.json")}

    again = serve_context.build_context(settings)
    assert again.photos.done.wait(60) and again.photos.state == "ready"
    out = capsys.readouterr().out
    assert "writing the demo's" not in out and "aligning" not in out
    assert {p: p.stat().st_mtime_ns for p in made} == made
    again.close()
