"""``bioscan5m serve``: a local web app to identify barcodes and photos and explore the reference's map.

One page per job, a JSON API behind them (OpenAPI at ``/docs``), every asset packaged (no CDN):

- :mod:`.settings`: what the server serves (reference, CLIBD model, dataset root) and its limits;
- :mod:`.limits`: upload size and query-count checks, and the error type that becomes a 4xx answer;
- :mod:`.backends`: the only module that calls the project's tasks (identify, retrieval, reduction);
- :mod:`.defaults`: the embedded default, the demo's synthetic dataset and models in the cache folder;
- :mod:`.jobs`: identify work on a worker thread, with progress the page polls;
- :mod:`.mapdata`: the reference's 2-D map (reduced once, cached) and the record catalogue;
- :mod:`.context`: everything a running server holds, built from the settings;
- :mod:`.app`: the FastAPI application (pages, API, static files).

FastAPI, uvicorn and python-multipart come with the ``serve`` extra (``pip install 'bioscan5m[serve]'``).
"""
