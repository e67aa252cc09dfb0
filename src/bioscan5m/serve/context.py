"""Everything a running server holds: the fitted identifier, the map, the photo model, the job runner.

Building it checks the options and fits the identifier (fast when its index is cached); the map and, for
the embedded default, the photo model are made on background threads so the identify page works at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bioscan5m.errors import BioscanError
from bioscan5m.serve import backends, defaults
from bioscan5m.serve.jobs import Job, JobRunner, Progress
from bioscan5m.serve.limits import RequestRefused, check_count, check_photo_count
from bioscan5m.serve.mapdata import build_map
from bioscan5m.serve.settings import ServeSettings
from bioscan5m.serve.uploads import read_barcodes, saved_photos

#: Queries predicted at a time by a job: the progress bar moves after each chunk.
CHUNK = 256


@dataclass
class Background:
    """Something made on a background thread: ``state`` is building, ready or failed (with ``error``)."""

    what: str
    state: str = "building"
    error: str | None = None
    value: Any = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, make) -> None:
        def work() -> None:
            try:
                self.value = make()
                self.state = "ready"
            except Exception as error:  # noqa: BLE001 -- shown on the page; the rest of the server keeps working
                self.state, self.error = "failed", f"{type(error).__name__}: {error}"
                print(f"[serve] building the {self.what} failed: {self.error}", flush=True)
            finally:
                self.done.set()

        threading.Thread(target=work, name=f"bioscan5m-serve-{self.what}", daemon=True).start()

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "error": self.error}


class ServeContext:
    """The state behind the app; see :func:`build_context`."""

    def __init__(self, settings: ServeSettings, reference: Any, identifier: Any, data: Path | None) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.reference = reference
        self.identifier = identifier
        self.data = data
        self.jobs = JobRunner(settings.limits.kept_jobs)
        self.map = Background("map")
        self.photos = Background("photo model")
        self.photos.state = "none"
        self.ranks = [r for r in backends.RANKS if r in reference.table.column_names]
        self._store: Any = None
        self._store_lock = threading.Lock()
        self.catalogue: frozenset[str] = frozenset()
        self._photo_lock = threading.Lock()  # one photo search at a time (the model is not re-entrant)

    @property
    def description(self) -> dict[str, Any]:
        """What the pages say they serve (``GET /api/info``)."""
        settings = self.settings
        reference = (str(settings.reference) if settings.reference else "the demo's synthetic dataset"
                     if settings.is_default else f"{backends.KEY_SPLITS} records of {settings.data}")
        return {"reference": reference,
                "reference_records": len(self.reference), "ranks": self.ranks,
                "data": str(self.data) if self.data else None, "default": self.settings.is_default,
                "model": self.photos.status() | {"folder": str(self.settings.model) if self.settings.model else None},
                "map": self.map.status(),
                "limits": {"max_upload_bytes": self.limits.max_upload_bytes, "max_queries": self.limits.max_queries,
                           "max_photos": self.limits.max_photos, "max_neighbours": self.limits.max_neighbours}}

    # -- identify -----------------------------------------------------------------------------------------
    def submit_identify(self, data: bytes, name: str, hits: int) -> Job:
        """Read the upload now (a bad one is refused at once), predict on the job thread."""
        check_count(hits, "hits", self.limits.max_neighbours)
        queries = read_barcodes(data, name, self.limits)
        return self.jobs.submit(lambda report: self._identify(queries, hits, report), total=len(queries))

    def _identify(self, queries: pd.DataFrame, hits: int, report: Progress) -> dict[str, pd.DataFrame]:
        tables, top = [], []
        for start in range(0, len(queries), CHUNK):
            predictions, best = backends.predict(self.identifier, queries.iloc[start:start + CHUNK], hits)
            tables.append(predictions)
            top.append(best)
            report(min(start + CHUNK, len(queries)), len(queries))
        return {"predictions": backends.tsv_table(pd.concat(tables, ignore_index=True)),
                "hits": pd.concat(top, ignore_index=True)}

    # -- photos -------------------------------------------------------------------------------------------
    def neighbours(self, photos: list[tuple[str, bytes]], k: int) -> dict[str, Any]:
        """The ``k`` nearest references of each photo by image and, when the model has DNA, by DNA key."""
        check_count(k, "k", self.limits.max_neighbours)
        if self.photos.state != "ready":
            message = {"none": "no photo search here: start the server with --model (a CLIBD folder made by "
                               "'bioscan5m align') and --data (its dataset root)",
                       "building": "the photo model is still being built; try again in a few minutes",
                       "failed": f"the photo model could not be built: {self.photos.error}"}[self.photos.state]
            raise RequestRefused(message, 409 if self.photos.state == "building" else 404)
        check_photo_count(len(photos), self.limits)
        model = self.photos.value
        out: dict[str, Any] = {"photos": [name for name, _ in photos], "by": {}}
        with saved_photos(photos, self.limits) as paths, self._photo_lock:
            for key in backends.model_modalities(model):
                table = backends.photo_neighbours(model, self.data, paths, key, max(1, k), self.settings.cache_dir)
                names = {path.name: name for path, (name, _) in zip(paths, photos)}
                table["query"] = table["query"].map(names)
                out["by"][key] = json_records(table)
        return out

    # -- thumbnails ---------------------------------------------------------------------------------------
    def thumbnail(self, record_id: str) -> bytes | None:
        """The photo of a reference record, looked up by id in the in-memory catalogue (None if unknown)."""
        if self.data is None or record_id not in self.catalogue:
            return None
        with self._store_lock:
            if self._store is None:
                self._store = backends.image_store(self.data, self.settings.cache_dir)
            try:
                return self._store.read_bytes(record_id)
            except (BioscanError, OSError, KeyError):
                return None

    # -- start-up -----------------------------------------------------------------------------------------
    def start_background(self) -> None:
        """Make the map and load (or, for the default, build) the photo model, each on its own thread."""
        self.map.run(lambda: build_map(self.reference, self.settings.map_reducer, self.settings.cache_dir))
        model = self.settings.model
        if self.settings.is_default:
            folder = defaults.default_model_folder(self.settings.demo_records, defaults.DEMO_SEED,
                                                   self.settings.cache_dir)
            self.photos.state = "building"
            self.photos.run(lambda: self._load_model(folder, build=not defaults.has_model(folder)))
        elif model is not None:
            self.photos.state = "building"
            self.photos.run(lambda: self._load_model(model, build=False))

    def _load_model(self, folder: Path, build: bool) -> Any:
        if build:
            defaults.build_default_model(self.data, folder, self.settings.demo_model_steps, defaults.DEMO_SEED,
                                         self.settings.device)
        return backends.load_clibd(folder, self.settings.device)

    def close(self) -> None:
        self.jobs.shutdown()


def build_context(settings: ServeSettings, *, background: bool = True) -> ServeContext:
    """Check the settings, load the reference and fit the identifier; start the background work."""
    if settings.model is not None and settings.data is None:
        raise BioscanError("--model needs --data: the dataset root whose specimens photos are matched with",
                           path=settings.model)
    data = settings.data
    if settings.is_default:
        data = defaults.default_dataset(settings.demo_records, defaults.DEMO_SEED, settings.cache_dir)
    from_data = settings.reference is None  # the dataset's reference specimens are the reference
    if from_data:
        reference = backends.load_reference(data, split=backends.KEY_SPLITS)
    else:
        reference = backends.load_reference(settings.reference, settings.taxonomy)
    print(f"[serve] indexing the reference ({len(reference):,} records)", flush=True)
    identifier = backends.fit_identifier(reference, settings.identifier_options, settings.cache_dir)
    context = ServeContext(settings, reference, identifier, data)
    if data is not None:  # the ids thumbnails are served for: the dataset's reference specimens
        specimens = reference if from_data else backends.load_reference(data, split=backends.KEY_SPLITS)
        context.catalogue = frozenset(specimens.ids.tolist())
    if background:
        context.start_background()
    return context


def json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON objects: NaN and missing names become null, float32 numbers the value the TSV shows
    (0.9969, not 0.9969000220298767)."""
    table = table.copy()
    for column in table.columns[table.dtypes == "float32"]:
        table[column] = table[column].astype(str).astype("float64")
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")
