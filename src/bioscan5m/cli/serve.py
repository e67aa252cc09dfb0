"""``bioscan5m serve``: a local web app to identify barcodes and photos and explore the reference's map."""

from __future__ import annotations

import argparse
import socket
import sys

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.errors import BioscanError

#: What ``pip install 'bioscan5m[serve]'`` brings: the import names the server needs.
SERVE_MODULES = ("fastapi", "uvicorn", "multipart", "fastapi_offline")
INSTALL_HINT = "the web app needs FastAPI and uvicorn: pip install 'bioscan5m[serve]'"


def port(text: str) -> int:
    value = t.positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535)")
    return value


def register(subparsers) -> None:
    from bioscan5m.serve.settings import LOCAL_HOST, Limits

    limits = Limits()
    parser = subparsers.add_parser(
        "serve",
        help="a local web app: identify barcodes and photos, explore the reference's map (needs the serve extra)",
        description=(
            "Serve three pages and a JSON API on this machine: identify pasted or uploaded FASTA/FASTQ barcodes "
            "(table per query, confidences, novelty, TSV download), find the nearest reference specimens of "
            "photos with a CLIBD model, and explore a zoomable 2-D map of the reference. With no options it "
            "serves the demo's synthetic dataset and models, made in the cache folder on first use. API docs at "
            "/docs (offline)."),
    )
    parser.add_argument("--reference", metavar="REF", type=t.existing_path,
                        help="reference barcodes with taxonomy, as 'identify --reference' takes them (a BOLD TSV, a "
                             "BIOSCAN-5M metadata CSV or dataset folder, a SINTAX FASTA, or a FASTA with --taxonomy); "
                             "default: --data's train + key_unseen records, else the demo's dataset")
    parser.add_argument("--taxonomy", metavar="TSV", type=t.existing_file,
                        help="with a FASTA reference: its taxonomy per sequence id (as for identify)")
    parser.add_argument("--model", metavar="DIR", type=t.existing_folder,
                        help="a CLIBD model folder written by 'bioscan5m align' (enables the photo page; needs --data)")
    parser.add_argument("--data", metavar="ROOT", type=t.existing_folder,
                        help="a BIOSCAN-5M dataset root: the specimens photos are matched with, and their thumbnails")
    parser.add_argument("--host", default=LOCAL_HOST,
                        help="address to listen on (default %(default)s: this machine only; any other address "
                             "lets other machines in, and a warning says so)")
    parser.add_argument("--port", type=port, default=8000, help="port (default %(default)s)")
    parser.add_argument("--method", default=None, metavar="METHOD",
                        help="identify's search method (default: identify's default)")
    parser.add_argument("--threads", type=t.positive_int, default=None, metavar="N",
                        help="CPU threads for identification (default: all)")
    parser.add_argument("--max-upload-mb", type=t.positive_float, default=limits.max_upload_bytes / 2**20,
                        metavar="MB", help="largest upload, FASTA or photo (default %(default)g MB)")
    parser.add_argument("--max-queries", type=t.positive_int, default=limits.max_queries, metavar="N",
                        help="most barcodes in one request (default %(default)s)")
    parser.add_argument("--map-reducer", choices=("umap", "pca"), default="umap",
                        help="how the map is reduced to 2-D (default %(default)s; computed once per reference and cached)")
    parser.add_argument("--device", default="cpu", type=t.device, help="device of the photo model (default: cpu)")
    add_cache_dir_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util
    from dataclasses import replace
    from pathlib import Path

    from bioscan5m.serve.settings import LOOPBACK_HOSTS, Limits, ServeSettings

    if any(importlib.util.find_spec(name) is None for name in SERVE_MODULES):
        raise BioscanError(INSTALL_HINT)
    if args.taxonomy and not args.reference:
        raise BioscanError("--taxonomy goes with a FASTA --reference", path=args.taxonomy)
    if args.model and not args.data:
        raise BioscanError("--model needs --data: the dataset root whose specimens photos are matched with",
                           path=args.model)
    _check_port_free(args.host, args.port)
    if args.host not in LOOPBACK_HOSTS:
        print(f"bioscan5m serve: warning: listening on {args.host}, not only this machine: anyone who can reach "
              "it can use the app (there is no login); use --host 127.0.0.1 to keep it local", file=sys.stderr)
    options = {key: value for key, value in (("method", args.method), ("threads", args.threads)) if value}
    settings = ServeSettings(
        reference=Path(args.reference) if args.reference else None,
        taxonomy=Path(args.taxonomy) if args.taxonomy else None,
        model=Path(args.model) if args.model else None, data=Path(args.data) if args.data else None,
        limits=replace(Limits(), max_upload_bytes=int(args.max_upload_mb * 2**20), max_queries=args.max_queries),
        identifier_options=options, map_reducer=args.map_reducer, device=args.device,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None)

    import uvicorn

    from bioscan5m.serve.app import create_app
    from bioscan5m.serve.context import build_context

    context = build_context(settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"bioscan5m serve: open http://{shown}:{args.port}/ (API docs at /docs; Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(create_app(context), host=args.host, port=args.port, log_level="warning")
    finally:
        context.close()
    return 0


def _check_port_free(host: str, number: int) -> None:
    """Fail with one line now, rather than after indexing, when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, number, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BioscanError(f"cannot listen on {host!r}: {error.strerror}", value=host) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as error:
            raise BioscanError(f"cannot listen on {host}:{number}: {error.strerror}", value=number) from None
