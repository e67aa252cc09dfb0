"""The web app's JSON API through FastAPI's TestClient: identical predictions to ``bioscan5m identify`` on real
held-out barcodes, photo neighbours, the map, offline docs, limits, and a 4xx with a readable message for
every kind of bad input."""

from __future__ import annotations

import gzip
import io
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bioscan5m.cli import main
from bioscan5m.data.images import ImageStore
from bioscan5m.data.records import load_records
from bioscan5m.serve import context as serve_context
from bioscan5m.serve.app import create_app
from bioscan5m.serve.context import build_context
from bioscan5m.serve.settings import Limits, ServeSettings

pytestmark = pytest.mark.usefixtures("one_thread")

LIMITS = Limits(max_upload_bytes=300_000, max_request_bytes=1_000_000, max_queries=60, max_photos=3)


def wait_ready(context) -> None:
    assert context.map.done.wait(120) and context.map.state == "ready", context.map.status()
    if context.photos.state != "none":
        assert context.photos.done.wait(120) and context.photos.state == "ready", context.photos.status()


@pytest.fixture(scope="module")
def served(real_barcodes, tiny_clibd, fast_identifier):
    """The app over the real reference (identify, map) and the tiny synthetic dataset and model (photos)."""
    root, model = tiny_clibd
    settings = ServeSettings(reference=real_barcodes["reference"], taxonomy=real_barcodes["taxonomy"], data=root,
                             model=model, limits=LIMITS, identifier_options=fast_identifier, map_reducer="pca")
    context = build_context(settings)
    wait_ready(context)
    with TestClient(create_app(context)) as client:
        yield client, context
    context.close()


def key_photo(root, index: int = 0) -> tuple[str, bytes]:
    """A reference specimen's photo from the synthetic dataset: (its record id, its JPEG bytes)."""
    record_id = str(load_records(root, split="train").ids[index])
    return record_id, ImageStore.open(root).read_bytes(record_id)


# -- identify -------------------------------------------------------------------------------------------------
def test_identify_gives_the_cli_tsv_byte_for_byte_on_real_held_out_barcodes(real_barcodes, tmp_path,
                                                                              monkeypatch, capsys):
    out = tmp_path / "cli.tsv"
    assert main(["identify", "--reference", str(real_barcodes["reference"]), "--taxonomy",
                 str(real_barcodes["taxonomy"]), "--queries", str(real_barcodes["queries"]), "--out", str(out),
                 "--hits", "3", "--threads", "1"]) == 0
    capsys.readouterr()
    cli = pd.read_csv(out, sep="\t", keep_default_na=False)
    cli_hits = pd.read_csv(tmp_path / "cli.hits.tsv", sep="\t", keep_default_na=False)
    assert len(cli) == real_barcodes["n_queries"] > 64

    # The server with identify's defaults; small chunks so that the job reports progress several times.
    monkeypatch.setattr(serve_context, "CHUNK", 32)
    context = build_context(ServeSettings(reference=real_barcodes["reference"], taxonomy=real_barcodes["taxonomy"],
                                          identifier_options={"threads": 1}), background=False)
    client = TestClient(create_app(context))
    fasta = real_barcodes["queries"].read_bytes()
    submitted = client.post("/api/jobs", files={"file": ("queries.fasta", fasta)}, data={"hits": "3"})
    assert submitted.status_code == 202 and submitted.json()["total"] == len(cli)
    job = submitted.json()
    while job["state"] not in ("done", "failed"):
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done" and job["done"] == job["total"] == len(cli)
    tsv = client.get(f"/api/jobs/{job['id']}/tsv")
    assert tsv.status_code == 200 and "attachment" in tsv.headers["content-disposition"]
    assert tsv.content == out.read_bytes()  # the download is the CLI's file, byte for byte

    # POST /api/identify (pasted text, answered when done): the same records as JSON.
    answer = client.post("/api/identify", data={"fasta": fasta.decode(), "hits": "3"})
    assert answer.status_code == 200
    records = pd.DataFrame(answer.json()["records"])
    assert list(records.columns) == list(cli.columns)
    assert records["query_id"].tolist() == cli["query_id"].tolist()
    assert (records["novel_species"] == cli["novel_species"]).all()
    for column in cli.columns:
        if cli[column].dtype.kind == "f":
            np.testing.assert_allclose(records[column].astype(float), cli[column], rtol=0, atol=1e-9)
        elif column != "novel_species":
            assert records[column].fillna("").astype(str).tolist() == cli[column].astype(str).tolist(), column
    hits = answer.json()["hits"]
    first = cli_hits[cli_hits["query_id"] == cli["query_id"][0]]
    assert [h["reference_id"] for h in hits[cli["query_id"][0]]] == first["reference_id"].tolist()
    # Real held-out records of species in the reference: most are named right.
    named = cli.set_index("query_id")["species"]
    truth = pd.Series(real_barcodes["query_species"])
    assert (named[truth.index] == truth).mean() > 0.8
    context.close()


def test_gzipped_fastq_upload_is_read_like_the_cli_reads_it(served, real_barcodes):
    client, _ = served
    lines = real_barcodes["queries"].read_text().splitlines()[:10]
    fastq = "".join(f"@{h[1:]}\n{s}\n+\n{'I' * len(s)}\n" for h, s in zip(lines[::2], lines[1::2]))
    answer = client.post("/api/identify", files={"file": ("q.fq.gz", gzip.compress(fastq.encode()))})
    assert answer.status_code == 200
    assert [r["query_id"] for r in answer.json()["records"]] == [h[1:] for h in lines[::2]]
    assert all(r["status"] == "ok" for r in answer.json()["records"])


# -- photos, map, thumbnails ----------------------------------------------------------------------------------
def test_a_photo_gets_its_nearest_references_by_image_and_by_dna(served, tiny_clibd):
    client, _ = served
    record_id, photo = key_photo(tiny_clibd[0], 3)
    other_id, other = key_photo(tiny_clibd[0], 40)
    answer = client.post("/api/retrieve", files=[("photos", ("my bug.jpg", photo, "image/jpeg")),
                                                 ("photos", ("other.jpg", other, "image/jpeg"))], data={"k": "4"})
    assert answer.status_code == 200
    result = answer.json()
    assert result["photos"] == ["my bug.jpg", "other.jpg"] and set(result["by"]) == {"image", "dna"}
    by_image = [row for row in result["by"]["image"] if row["query"] == "my bug.jpg"]
    assert [row["neighbour"] for row in by_image] == [1, 2, 3, 4]
    assert by_image[0]["processid"] == record_id and by_image[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert all(row["species"] for row in by_image)
    assert next(row["processid"] for row in result["by"]["image"] if row["query"] == "other.jpg") == other_id
    assert len(result["by"]["dna"]) == 8
    thumbnail = client.get(f"/api/thumbnail/{by_image[1]['processid']}")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumbnail.content)).size[0] > 0


def test_the_map_has_every_reference_barcode_with_its_names(served, real_barcodes):
    client, context = served
    full = client.get("/api/map").json()
    n = len(context.reference)
    assert full["n"] == n == len(full["ids"]) == len(full["x"]) == len(full["y"])
    assert 0 <= min(full["x"]) and max(max(full["x"]), max(full["y"])) <= 1
    assert set(full["ranks"]) == {"phylum", "class", "order", "family", "subfamily", "genus", "species"}
    genus = client.get("/api/map", params={"rank": "genus"}).json()["ranks"]
    assert list(genus) == ["genus"] and len(genus["genus"]["codes"]) == n
    taxonomy = pd.read_csv(real_barcodes["taxonomy"], sep="\t").set_index("processid")
    first = full["ids"][0]
    assert genus["genus"]["names"][genus["genus"]["codes"][0]] == taxonomy.loc[first, "genus"]


def test_pages_docs_and_openapi_work_offline(served):
    client, _ = served
    for url, marker in (("/", "identify-form"), ("/photos", 'id="drop"'), ("/explore", '<canvas id="map"')):
        page = client.get(url)
        assert page.status_code == 200 and marker in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing from the network
    docs = client.get("/docs").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/identify", "/api/retrieve", "/api/map", "/api/jobs/{job_id}/tsv"} <= set(paths)
    info = client.get("/api/info").json()
    assert info["model"]["state"] == "ready" and info["limits"]["max_queries"] == LIMITS.max_queries


# -- bad input and limits -------------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50


@pytest.mark.parametrize(("request_", "status", "message"), [
    (("post", "/api/identify", {"data": {"fasta": "the quick brown fox"}}), 400, "not FASTA or FASTQ"),
    (("post", "/api/identify", {"data": {"fasta": ">a\nACGTQQACGT\n"}}), 400, "'Q' is not a DNA letter"),
    (("post", "/api/identify", {"data": {"fasta": ">a\n>b\nACGT\n"}}), 400, "record 'a' has no sequence"),
    (("post", "/api/identify", {"data": {}}), 400, "nothing to identify"),
    (("post", "/api/identify", {"data": {"fasta": "   \n"}}), 400, "is empty"),
    (("post", "/api/identify", {"files": {"file": ("x.fasta", b"\x00\x01\x02binary")}}), 400, "binary data"),
    (("post", "/api/identify", {"files": {"file": ("x.fasta.gz", b"\x1f\x8bnot gzip")}}), 400, "not readable gzip"),
    (("post", "/api/identify", {"data": {"fasta": ">a\nACGT\n", "hits": "many"}}), 422, "hits"),
    (("post", "/api/identify", {"data": {"fasta": ">a\nACGT\n", "hits": "99"}}), 400, "hits must be between"),
    (("post", "/api/retrieve", {"files": [("photos", ("notes.txt", b"not an image", "text/plain"))]}), 400,
     "notes.txt"),
    (("post", "/api/retrieve", {"files": [("photos", ("broken.png", PNG, "image/png"))]}), 400, "broken.png"),
    (("post", "/api/retrieve", {"files": [("photos", ("empty.jpg", b"", "image/jpeg"))]}), 400, "empty"),
    (("post", "/api/retrieve", {"data": {"k": "3"}}), 422, "photos"),
    (("get", "/api/map?rank=kingdom", {}), 400, "unknown rank 'kingdom'"),
    (("get", "/api/jobs/12-deadbeef", {}), 404, "no identify job"),
    (("get", "/api/thumbnail/not-a-record", {}), 404, "no photo"),
    (("get", "/api/thumbnail/..%2f..%2fetc%2fpasswd", {}), 404, ""),
    (("get", "/static/../../../etc/passwd", {}), 404, ""),
    (("get", "/no/such/page", {}), 404, "Not Found"),
])
def test_bad_input_is_a_4xx_with_a_readable_message(served, request_, status, message):
    client, _ = served
    method, url, options = request_
    answer = getattr(client, method)(url, **options)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert message in error and "Traceback" not in error and "/tmp" not in error  # no server paths leak


def test_limits_refuse_with_the_limit_in_the_message(served, real_barcodes, tiny_clibd):
    client, _ = served
    many = "".join(f">q{i}\nACGTACGTACGTACGTTTGA\n" for i in range(LIMITS.max_queries + 1))
    answer = client.post("/api/identify", data={"fasta": many})
    assert answer.status_code == 413 and f"limit is {LIMITS.max_queries}" in answer.json()["error"]
    big = b">q\n" + b"ACGT" * (LIMITS.max_upload_bytes // 4 + 1)
    answer = client.post("/api/identify", files={"file": ("big.fasta", big)})
    assert answer.status_code == 413 and "big.fasta" in answer.json()["error"] and "limit" in answer.json()["error"]
    huge = b">q\n" + b"A" * LIMITS.max_request_bytes
    answer = client.post("/api/identify", files={"file": ("huge.fasta", huge)})
    assert answer.status_code == 413 and "the request is" in answer.json()["error"]
    _, photo = key_photo(tiny_clibd[0])
    photos = [("photos", (f"p{i}.jpg", photo, "image/jpeg")) for i in range(LIMITS.max_photos + 1)]
    answer = client.post("/api/retrieve", files=photos)
    assert answer.status_code == 413 and f"limit is {LIMITS.max_photos}" in answer.json()["error"]


def test_photo_page_without_a_model_says_how_to_get_one(real_barcodes, fast_identifier):
    context = build_context(ServeSettings(reference=real_barcodes["reference"], taxonomy=real_barcodes["taxonomy"],
                                          identifier_options=fast_identifier), background=False)
    client = TestClient(create_app(context))
    answer = client.post("/api/retrieve", files=[("photos", ("a.jpg", b"\xff\xd8\xff", "image/jpeg"))])
    assert answer.status_code == 404 and "--model" in answer.json()["error"]
    assert client.get("/api/thumbnail/anything").status_code == 404
    context.close()


def test_a_failed_job_keeps_its_error_for_the_page(served, monkeypatch):
    client, context = served

    def broken(*args, **kwargs):
        raise serve_context.BioscanError("the reference index went away")

    monkeypatch.setattr(serve_context.backends, "predict", broken)
    job = client.post("/api/jobs", data={"fasta": ">a\nACGTACGTACGTACGTACGGT\n"}).json()
    context.jobs.get(job["id"]).future.result(timeout=30)
    status = client.get(f"/api/jobs/{job['id']}").json()
    assert status["state"] == "failed" and "index went away" in status["error"]
    answer = client.get(f"/api/jobs/{job['id']}/tsv")
    assert answer.status_code == 400 and "index went away" in answer.json()["error"]


def test_the_map_is_reduced_once_and_read_from_the_cache_after(real_barcodes, tmp_path, monkeypatch):
    from bioscan5m.serve import backends
    from bioscan5m.serve.mapdata import build_map

    reference = backends.load_reference(real_barcodes["reference"], real_barcodes["taxonomy"])
    made = build_map(reference, "umap", cache_dir=tmp_path)
    assert made.xy.shape == (len(reference), 2) and made.xy.min() >= 0 and made.xy.max() <= 1
    assert [p.name.split(".")[0] for p in (tmp_path / "reduced").iterdir()] == ["serve-map"]

    def not_again(*args, **kwargs):
        raise AssertionError("embedded again although the map is cached")

    monkeypatch.setattr(backends, "map_vectors", not_again)
    again = build_map(reference, "umap", cache_dir=tmp_path)
    np.testing.assert_array_equal(again.xy, made.xy)
    assert again.payload("genus")["ranks"]["genus"] == made.payload("genus")["ranks"]["genus"]


def test_jobs_report_progress_and_only_the_newest_finished_are_kept():
    import threading

    from bioscan5m.serve.jobs import JobRunner

    runner = JobRunner(kept=2)
    halfway, carry_on = threading.Event(), threading.Event()

    def work(report):
        report(1, 3)
        halfway.set()
        carry_on.wait(10)
        report(3, 3)
        return "answer"

    job = runner.submit(work, total=3)
    assert halfway.wait(10)
    assert runner.get(job.id).summary() == {"id": job.id, "state": "running", "done": 1, "total": 3, "error": None}
    carry_on.set()
    assert job.future.result(10) == "answer" and job.state == "done" and job.done == 3
    later = [runner.submit(lambda report: None) for _ in range(3)]
    later[-1].future.result(10)
    runner.submit(lambda report: None).future.result(10)
    assert runner.get(job.id) is None and runner.get(later[0].id) is None  # the oldest finished are dropped
    assert runner.get(later[-1].id).state == "done"
    runner.shutdown()
