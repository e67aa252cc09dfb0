"""The FastAPI application: three pages, the JSON API behind them, packaged static files, offline docs.

Every answer to bad input is a 4xx with ``{"error": "one readable line"}``; a 500 only ever means a bug.
OpenAPI: ``/openapi.json``, and Swagger UI at ``/docs`` served from the files fastapi-offline packages.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from bioscan5m import __version__
from bioscan5m.errors import BioscanError
from bioscan5m.serve.context import ServeContext, json_records
from bioscan5m.serve.jobs import Job
from bioscan5m.serve.limits import RequestRefused, megabytes

STATIC = Path(str(resources.files("bioscan5m.serve") / "static"))
#: The pages' contents (``<name>.html``, the inside of ``<main>``) and the shell around each (``page.html``).
PAGE_PARTS = Path(str(resources.files("bioscan5m.serve") / "pages"))
#: The pages, by URL path: (name of its content and script, title and link text).
PAGES = {"/": ("identify", "Identify barcodes"), "/photos": ("photos", "Photos"), "/explore": ("explore", "Explore")}


def create_app(context: ServeContext) -> FastAPI:
    """The app serving ``context`` (see :func:`bioscan5m.serve.context.build_context`)."""
    app = FastAPIOffline(title="bioscan5m serve", version=__version__, redoc_url=None,
                         description="Identify DNA barcodes and specimen photos, explore the reference's map.")
    app.state.context = context
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app)
    _add_body_limit(app, context.limits.max_request_bytes)

    for url in PAGES:
        app.add_api_route(url, _page(url), include_in_schema=False, methods=["GET"])

    @app.get("/api/info", summary="What this server serves and its limits")
    def info() -> dict[str, Any]:
        return context.description

    @app.post("/api/identify", summary="Identify barcodes (FASTA/FASTQ text or file); waits for the answer")
    async def identify(fasta: Annotated[str | None, Form(description="FASTA or FASTQ text")] = None,
                       file: Annotated[UploadFile | None, File(description="a FASTA/FASTQ file, plain or .gz")] = None,
                       hits: Annotated[int, Form(description="top reference hits listed per query")] = 3
                       ) -> dict[str, Any]:
        """The same records as ``bioscan5m identify``'s TSV (one per query), and each query's top hits."""
        job = await _submitted(context, fasta, file, hits)
        await asyncio.wrap_future(job.future)
        return _result(job)

    @app.post("/api/jobs", status_code=202, summary="Start identifying barcodes; poll /api/jobs/{id}")
    async def submit(fasta: Annotated[str | None, Form()] = None, file: Annotated[UploadFile | None, File()] = None,
                     hits: Annotated[int, Form()] = 3) -> dict[str, Any]:
        return (await _submitted(context, fasta, file, hits)).summary()

    @app.get("/api/jobs/{job_id}", summary="Where an identify job stands (queued, running, done, failed)")
    def job_status(job_id: str) -> dict[str, Any]:
        return _job(context, job_id).summary()

    @app.get("/api/jobs/{job_id}/result", summary="A finished job's records and top hits")
    def job_result(job_id: str) -> dict[str, Any]:
        return _result(_job(context, job_id))

    @app.get("/api/jobs/{job_id}/tsv", summary="A finished job's predictions as identify's TSV",
             response_class=Response)
    def job_tsv(job_id: str) -> Response:
        job = _finished(_job(context, job_id))
        text = job.result["predictions"].to_csv(sep="\t", index=False)
        return Response(text, media_type="text/tab-separated-values; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="predictions.tsv"'})

    @app.post("/api/retrieve", summary="Nearest reference specimens of photos, by image and by DNA")
    async def retrieve(photos: Annotated[list[UploadFile], File(description="specimen photos (JPEG, PNG)")],
                       k: Annotated[int, Form(description="neighbours per photo")] = 5) -> dict[str, Any]:
        uploads = [(upload.filename or f"photo {n}", await _read(upload, context))
                   for n, upload in enumerate(photos, start=1)]
        return await run_in_threadpool(context.neighbours, uploads, k)

    @app.get("/api/map", summary="The reference's 2-D map (202 while it is being computed)")
    def map_points(rank: Annotated[str | None, Query(description="only this rank's names")] = None) -> Any:
        if rank is not None and rank not in context.ranks:
            raise RequestRefused(f"unknown rank {rank!r}; choose from {', '.join(context.ranks)}")
        if context.map.state != "ready":
            status = 202 if context.map.state == "building" else 503
            return JSONResponse(context.map.status(), status_code=status)
        return context.map.value.payload(rank)

    @app.get("/api/thumbnail/{record_id}", summary="The photo of a reference specimen, by record id",
             response_class=Response)
    def thumbnail(record_id: str) -> Response:
        data = context.thumbnail(record_id)
        if data is None:
            raise RequestRefused(f"no photo of a reference record {record_id!r} here", 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return app


def _page(url: str):
    """The page at ``url``: its content in the shared shell (head, navigation with this page marked, scripts)."""
    name, title = PAGES[url]
    current = {link: ' class="current"' if link == url else "" for link in PAGES}
    nav = "\n".join(f'    <a href="{link}"{current[link]}>{text}</a>' for link, (_, text) in PAGES.items())
    html = Template((PAGE_PARTS / "page.html").read_text(encoding="utf-8")).substitute(
        title=title, nav=nav, name=name, main=(PAGE_PARTS / f"{name}.html").read_text(encoding="utf-8"))

    def page() -> HTMLResponse:
        return HTMLResponse(html)

    return page


async def _read(upload: UploadFile, context: ServeContext) -> bytes:
    """An upload's bytes, refused before reading when it is larger than the limit."""
    limit = context.limits.max_upload_bytes
    if upload.size is not None and upload.size > limit:
        raise RequestRefused(f"{upload.filename or 'the upload'} is {megabytes(upload.size)}; the limit is "
                             f"{megabytes(limit)} per upload", 413)
    return await upload.read()


async def _submitted(context: ServeContext, fasta: str | None, file: UploadFile | None, hits: int) -> Job:
    if file is not None and file.filename:
        data, name = await _read(file, context), file.filename
    elif fasta is not None:
        data, name = fasta.encode("utf-8"), "the pasted text"
    else:
        raise RequestRefused("nothing to identify: paste FASTA/FASTQ text (field 'fasta') or upload a file "
                             "(field 'file')")
    # Reading the queries can take a moment for large uploads: not on the event loop.
    return await run_in_threadpool(context.submit_identify, data, name, hits)


def _job(context: ServeContext, job_id: str) -> Job:
    job = context.jobs.get(job_id)
    if job is None:
        raise RequestRefused(f"no identify job {job_id!r} (finished jobs are kept for a while only)", 404)
    return job


def _finished(job: Job) -> Job:
    if job.state == "failed":
        raise RequestRefused(job.error or "failed", job.status)
    if job.state != "done":
        raise RequestRefused(f"job {job.id} is {job.state} ({job.done} of {job.total} barcodes)", 409)
    return job


def _result(job: Job) -> dict[str, Any]:
    _finished(job)
    hits = job.result["hits"]
    by_query: dict[str, list] = {}
    for row in json_records(hits):
        by_query.setdefault(str(row["query_id"]), []).append(row)
    records = json_records(job.result["predictions"])
    for record in records:
        record["novel_species"] = record["novel_species"] == "true"
    return {"id": job.id, "records": records, "hits": by_query}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestRefused)
    async def refused(request: Request, error: RequestRefused) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(BioscanError)
    async def bad_input(request: Request, error: BioscanError) -> JSONResponse:
        return _error(400, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for problem in error.errors():
            field = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "request"
            problems.append(f"{field}: {problem.get('msg', 'invalid')}")
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(error).__name__}: {error} (a bug in bioscan5m; please report it)")


def _add_body_limit(app: FastAPI, limit: int) -> None:
    """Refuse a request whose declared body is larger than any allowed upload, before reading it."""

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _error(413, f"the request is {megabytes(int(declared))}; the limit is {megabytes(limit)}")
        return await call_next(request)
