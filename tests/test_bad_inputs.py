"""Every CLI command against a corpus of bad inputs: exit 2, one line on stderr, no traceback, inputs unchanged,
no new files (the error policy of ``bioscan5m.cli``, docs/reliability.md).

The corpus is a table: to cover a new command, add rows to ``CASES`` (``{w}`` is the folder of prepared
inputs, ``{closed}`` a loopback port nothing listens on). ``test_every_command_is_in_the_corpus`` fails
until each command registered in the parser has rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bioscan5m.cli import build_parser, main
from bioscan5m.data.synthetic import METADATA_CSV, write_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Case:
    """One bad command line and a piece of the one-line message it must print."""

    id: str
    argv: tuple[str, ...]
    expect: str


def case(id: str, command: str, expect: str) -> Case:
    return Case(id, tuple(command.split()), expect)


# Bad values the parser must refuse, for the options every kind of command has.
CASES: list[Case] = [
    # --- stats: unreadable, truncated, corrupt or missing sources; outputs of the wrong kind
    case("stats-truncated-csv-gz", "stats {w}/trunc.csv.gz", "trunc.csv.gz"),
    case("stats-truncated-fasta-gz", "stats {w}/trunc.fasta.gz", "trunc.fasta.gz"),
    case("stats-gzip-magic-then-garbage", "stats {w}/fake.fasta.gz", "fake.fasta.gz"),
    case("stats-empty-file", "stats {w}/empty.fasta", "empty.fasta"),
    case("stats-binary-garbage", "stats {w}/garbage.csv", "garbage.csv"),
    case("stats-latin1-fasta", "stats {w}/latin1.fasta", "latin1.fasta:1"),
    case("stats-missing-file", "stats {w}/absent.csv", "no such file"),
    case("stats-newline-in-id", "stats {w}/newline_id.csv", "line break"),
    # the cached table groups records by split: a message must name the record by id, not by its row there
    case("stats-non-dna-letter-names-the-record", "stats {w}/bad_letter.csv", "record LASTREC-99: 'X'"),
    case("stats-ragged-quoted-line", "stats {w}/ragged.csv", "ragged.csv:3"),
    case("stats-out-is-a-file", "stats {w}/meta.csv --out {w}/afile", "is a file"),
    case("stats-out-is-the-input", "stats {w}/ds --out {w}/ds", "also the input"),
    case("stats-out-under-a-file", "stats {w}/meta.csv --out {w}/afile/stats", "afile is a file"),
    case("stats-unknown-split", "stats {w}/meta.csv --split trian --out {w}/new", "unknown split"),
    # --- synth
    case("synth-over-a-dataset", "synth --out {w}/ds --records 5", "not empty"),
    case("synth-zero-records", "synth --out {w}/new --records 0", "at least 1"),
    case("synth-records-not-a-number", "synth --out {w}/new --records many", "not a whole number"),
    case("synth-out-is-a-file", "synth --out {w}/afile --records 5", "is a file"),
    case("synth-out-is-a-device", "synth --out /dev/null --records 5", "device"),
    case("synth-unknown-package", "synth --out {w}/new --records 5 --image-package jpeg_1024", "jpeg_1024"),
    # --- identify
    case("identify-truncated-reference", "identify --reference {w}/trunc.csv.gz --queries {w}/q.fasta "
         "--out {w}/new.tsv", "trunc.csv.gz"),
    case("identify-truncated-queries", "identify --reference {w}/meta.csv --queries {w}/trunc.fasta.gz "
         "--out {w}/new.tsv", "trunc.fasta.gz"),
    case("identify-out-is-the-queries", "identify --reference {w}/meta.csv --queries {w}/q.fasta "
         "--out {w}/q.fasta", "also the input"),
    case("identify-out-is-a-device", "identify --reference {w}/meta.csv --queries {w}/q.fasta --out /dev/null",
         "device"),
    case("identify-out-is-a-folder", "identify --reference {w}/meta.csv --queries {w}/q.fasta --out {w}/ds",
         "is a folder"),
    case("identify-cache-dir-is-a-file", "identify --reference {w}/meta.csv --queries {w}/q.fasta "
         "--out {w}/new.tsv --cache-dir {w}/afile", "--cache-dir"),
    case("identify-zero-threads", "identify --reference {w}/meta.csv --queries {w}/q.fasta --out {w}/new.tsv "
         "--threads 0", "--threads"),
    case("identify-taxonomy-missing", "identify --reference {w}/q.fasta --taxonomy {w}/absent.tsv "
         "--queries {w}/q.fasta --out {w}/new.tsv", "absent.tsv"),
    # --- embed
    case("embed-device-banana", "embed --data {w}/meta.csv --encoder kmer-profile --out {w}/new --device banana",
         "banana"),
    case("embed-batch-size-zero", "embed --data {w}/meta.csv --encoder kmer-profile --out {w}/new "
         "--batch-size 0", "--batch-size"),
    case("embed-unknown-encoder", "embed --data {w}/meta.csv --encoder word2vec --out {w}/new", "word2vec"),
    case("embed-folder-without-model", "embed --data {w}/q.fasta --encoder hf-dna:{w}/no_model --out {w}/new",
         "no config.json"),
    case("embed-remote-code-refused", "embed --data {w}/q.fasta --encoder hf-dna:{w}/remote_code --out {w}/new",
         "--trust-remote-code"),
    case("embed-truncated-weights", "embed --data {w}/q.fasta --encoder barcodebert:{w}/cut_model "
         "--out {w}/new", "model.safetensors"),
    case("embed-corrupt-config", "embed --data {w}/q.fasta --encoder barcodebert:{w}/bad_config --out {w}/new",
         "config.json"),
    case("embed-out-is-a-file", "embed --data {w}/meta.csv --encoder kmer-profile --out {w}/afile", "is a file"),
    # --- cluster
    case("cluster-nan-rows", "cluster --embeddings {w}/emb_nan --labels {w}/meta.csv --out {w}/new", "NaN"),
    case("cluster-more-ids-than-vectors", "cluster --embeddings {w}/emb_extra_id --labels {w}/meta.csv "
         "--out {w}/new", "disagree"),
    case("cluster-negative-min-dist", "cluster --embeddings {w}/emb --labels {w}/meta.csv --out {w}/new "
         "--min-dist -5", "--min-dist"),
    case("cluster-zero-neighbours", "cluster --embeddings {w}/emb --labels {w}/meta.csv --out {w}/new "
         "--neighbors 0", "--neighbors"),
    case("cluster-embeddings-is-a-file", "cluster --embeddings {w}/afile --labels {w}/meta.csv --out {w}/new",
         "not a folder"),
    case("cluster-out-is-a-file", "cluster --embeddings {w}/emb --labels {w}/meta.csv --out {w}/afile",
         "is a file"),
    # --- pretrain
    case("pretrain-weight-decay-nan", "pretrain --data {w}/meta.csv --out {w}/new --steps 1 --weight-decay nan",
         "finite"),
    case("pretrain-negative-workers", "pretrain --data {w}/meta.csv --out {w}/new --steps 1 --workers -2",
         "--workers"),
    case("pretrain-zero-steps", "pretrain --data {w}/meta.csv --out {w}/new --steps 0", "--steps"),
    case("pretrain-mask-ratio-above-one", "pretrain --data {w}/meta.csv --out {w}/new --steps 1 "
         "--mask-ratio 1.5", "--mask-ratio"),
    case("pretrain-out-is-a-device", "pretrain --data {w}/meta.csv --out /dev/null --steps 1", "device"),
    case("pretrain-truncated-data", "pretrain --data {w}/trunc.csv.gz --out {w}/new --steps 1 "
         "--model 4-2-2-tiny", "trunc.csv.gz"),
    # --- finetune
    case("finetune-holdout-one", "finetune --model 4-2-2-tiny --data {w}/q.fasta --out {w}/new --steps 1 "
         "--holdout 1", "--holdout"),
    case("finetune-negative-lr", "finetune --model 4-2-2-tiny --data {w}/meta.csv --out {w}/new --steps 1 "
         "--lr -1", "--lr"),
    case("finetune-truncated-weights", "finetune --model {w}/cut_model --data {w}/bold.tsv --holdout 0.5 "
         "--out {w}/new --steps 1", "model.safetensors"),
    case("finetune-data-missing", "finetune --model 4-2-2-tiny --data {w}/absent.tsv --out {w}/new --steps 1",
         "absent.tsv"),
    # --- probe
    case("probe-unknown-probe", "probe svm --model kmer-profile --data {w}/meta.csv --out {w}/new", "svm"),
    case("probe-holdout-zero", "probe knn --model kmer-profile --data {w}/q.fasta --out {w}/new --holdout 0",
         "--holdout"),
    case("probe-truncated-data", "probe knn --model kmer-profile-3 --data {w}/trunc.fasta.gz --holdout 0.3 "
         "--out {w}/new", "trunc.fasta.gz"),
    case("probe-remote-code-refused", "probe knn --model hf-dna:{w}/remote_code --data {w}/bold.tsv "
         "--holdout 0.5 --holdout-by record --out {w}/new", "--trust-remote-code"),
    # --- align
    case("align-zero-steps", "align --data {w}/ds --out {w}/new --steps 0", "--steps"),
    case("align-device-banana", "align --data {w}/ds --out {w}/new --device banana", "banana"),
    case("align-data-missing", "align --data {w}/absent --out {w}/new", "absent"),
    case("align-out-is-a-file", "align --data {w}/ds --out {w}/afile --steps 1", "is a file"),
    # --- benchmark
    case("benchmark-dna-epochs-nan", "benchmark dna --data {w}/ds --out {w}/new --epochs nan", "finite"),
    case("benchmark-zsc-zero-knn", "benchmark zsc --data {w}/meta.csv --out {w}/new --knn 0", "--knn"),
    case("benchmark-zsc-truncated", "benchmark zsc --data {w}/trunc.csv.gz --out {w}/new --split none "
         "--reducer pca", "trunc.csv.gz"),
    case("benchmark-retrieval-no-model", "benchmark retrieval --data {w}/ds --model {w}/no_model --out {w}/new",
         "config.json"),
    case("benchmark-unknown-task", "benchmark speed --data {w}/ds", "speed"),
    # --- retrieve
    case("retrieve-k-zero", "retrieve --model {w}/no_model --data {w}/ds -k 0 --query-fasta {w}/q.fasta", "-k"),
    case("retrieve-folder-without-model", "retrieve --model {w}/no_model --data {w}/ds --query-fasta {w}/q.fasta",
         "config.json"),
    case("retrieve-query-missing", "retrieve --model {w}/no_model --data {w}/ds --query-fasta {w}/absent.fasta",
         "absent.fasta"),
    case("retrieve-out-is-a-file", "retrieve --model {w}/no_model --data {w}/ds --out {w}/afile", "is a file"),
    # --- demo
    case("demo-zero-records", "demo --out {w}/new --records 0", "--records"),
    case("demo-device-banana", "demo --out {w}/new --device banana", "banana"),
    case("demo-out-is-a-file", "demo --out {w}/afile --parts data", "is a file"),
    case("demo-other-size", "demo --out {w}/demo --parts data --records 7", "not the 7 records"),
    # --- download
    case("download-root-is-a-file", "download --root {w}/afile metadata", "is a file"),
    case("download-host-does-not-resolve", "download --root {w}/new --mirror http://nonexistent.invalid/ "
         "metadata", "cannot reach nonexistent.invalid"),
    case("download-port-closed", "download --root {w}/new --mirror http://127.0.0.1:{closed}/ metadata",
         "refused"),
    case("download-negative-retries", "download --root {w}/new --retries -1 metadata", "--retries"),
    case("download-unknown-item", "download --root {w}/new imagez", "imagez"),
    # --- serve (every refusal comes before the server starts or indexes anything)
    case("serve-port-too-large", "serve --port 70000", "not a port"),
    case("serve-zero-max-queries", "serve --max-queries 0", "at least 1"),
    case("serve-reference-missing", "serve --reference {w}/absent.tsv", "no such file"),
    case("serve-data-is-a-file", "serve --data {w}/afile", "not a folder"),
    case("serve-model-without-data", "serve --model {w}/no_model --port {closed}", "--model needs --data"),
    case("serve-taxonomy-without-reference", "serve --taxonomy {w}/q.fasta --port {closed}", "--taxonomy goes with"),
    case("serve-truncated-reference", "serve --reference {w}/trunc.csv.gz --port {closed}", "trunc.csv.gz"),
    # --- no command
    case("unknown-command", "frobnicate --out {w}/new", "frobnicate"),
    # --- classify and push (commands merged from other branches: these rows run where the command exists)
    case("classify-top-k-zero", "classify --model {w}/no_model --queries {w}/q.fasta --out {w}/new.tsv --top-k 0",
         "--top-k"),
    case("classify-device-banana", "classify --model {w}/no_model --queries {w}/q.fasta --out {w}/new.tsv "
         "--device banana", "banana"),
    case("classify-out-is-the-queries", "classify --model {w}/no_model --queries {w}/q.fasta --out {w}/q.fasta",
         "also the input"),
    case("classify-folder-without-model", "classify --model {w}/no_model --queries {w}/q.fasta --out {w}/new.tsv",
         "no_model"),
    case("push-model-missing", "push --model {w}/absent --repo me/model", "absent"),
    case("push-model-is-a-file", "push --model {w}/afile --repo me/model", "afile"),
    case("cache-prune-negative-days", "cache prune --older-than -1", "0 or more"),
    case("cache-prune-without-criterion", "cache prune --cache-dir {w}/new", "say what to remove"),
    case("cache-list-unknown-kind", "cache list --kind nope", "nope"),
    case("cache-dir-is-a-file", "cache dir --cache-dir {w}/afile", "not a folder"),
]


def _closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Good and bad inputs, made once: tiny, so that the whole corpus runs in seconds."""
    from bioscan5m.embeddings.store import Embeddings
    from bioscan5m.models.registry import create_dna_model

    w = tmp_path_factory.mktemp("world")
    ds = write_synthetic_dataset(w / "ds", 40, images=False, seed=1)
    meta = (ds / METADATA_CSV).read_bytes()
    (w / "meta.csv").write_bytes(meta)
    lines = meta.decode().splitlines(keepends=True)
    (w / "newline_id.csv").write_text(lines[0] + '"AB\nCD"' + lines[1][lines[1].index(","):] + "".join(lines[2:]))
    (w / "ragged.csv").write_text(lines[0] + lines[1] + '"A\nB",x\n' + "".join(lines[2:]))
    (w / "trunc.csv.gz").write_bytes(gzip.compress(meta)[:600])
    last = lines[-1].split(",")
    last[0], last[11] = "LASTREC-99", "ACGTXXACGT"  # processid, dna_barcode
    (w / "bad_letter.csv").write_text("".join(lines[:-1]) + ",".join(last))
    fasta = b">q1\nACGTACGTACGTAGCTAGCATCG\n>q2\nACGTTTGACAGCATCGACTAGC\n"
    (w / "q.fasta").write_bytes(fasta)
    (w / "trunc.fasta.gz").write_bytes(gzip.compress(fasta * 20)[:40])
    (w / "fake.fasta.gz").write_bytes(b"\x1f\x8b" + b"not gzip at all" * 4)
    (w / "empty.fasta").write_bytes(b"")
    (w / "garbage.csv").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)))
    (w / "latin1.fasta").write_bytes(b">caf\xe9\nACGT\n")
    (w / "bold.tsv").write_text("processid\tgenus_name\tspecies_name\tnucleotides\n" + "".join(
        f"P{i}\tAus\tAus b{i % 3}\t{'ACGT' * 10}{'ACGT'[i % 4] * 5}\n" for i in range(12)))
    (w / "afile").write_text("not a folder\n")
    (w / "no_model").mkdir()
    (w / "remote_code").mkdir()
    (w / "remote_code" / "config.json").write_text(json.dumps(
        {"model_type": "custom", "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}))
    (w / "remote_code" / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    model = create_dna_model("4-2-2-tiny")
    model.save_pretrained(w / "cut_model")
    weights = w / "cut_model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    model.save_pretrained(w / "bad_config")
    (w / "bad_config" / "config.json").write_text('{"hidden_size": ')
    ids = [line.split(",", 1)[0] for line in lines[1:]]
    vectors = np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32)
    Embeddings(np.array(ids), vectors, {"encoder": {"name": "random"}}).save(w / "emb")
    broken = vectors.copy()
    broken[[3, 7]] = np.nan
    Embeddings(np.array(ids), broken, {"encoder": {"name": "random"}}).save(w / "emb_nan")
    Embeddings(np.array(ids), vectors, {"encoder": {"name": "random"}}).save(w / "emb_extra_id")
    with open(w / "emb_extra_id" / "ids.tsv", "a") as handle:
        handle.write("EXTRA-1\n")
    (w / "demo" / "data").mkdir(parents=True)
    for path in ds.rglob("*"):
        target = w / "demo" / "data" / path.relative_to(ds)
        target.mkdir(parents=True, exist_ok=True) if path.is_dir() else target.write_bytes(path.read_bytes())
    return w


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file (with the SHA-256 of its bytes) and folder under ``roots`` (caches live elsewhere, in the
    cache folder, so a cache written beside an input shows up here as a new file)."""
    state = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_dir():
                state[str(path)] = "folder"
            else:
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture
def isolated(world, tmp_path, monkeypatch):
    """Run in an empty folder with a private cache; yield the folders that must not change."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("BIOSCAN5M_CACHE_DIR", str(tmp_path / "cache"))
    return world, cwd


def _registered() -> set[str]:
    return set(build_parser()._subparsers._group_actions[0].choices)


def _params() -> list:
    """The cases, those of commands this build lacks marked as such (they run once the command is merged)."""
    known = _registered()
    return [pytest.param(c, id=c.id, marks=pytest.mark.skipif(
        c.argv[0] not in known and c.id != "unknown-command", reason=f"no '{c.argv[0]}' command in this build"))
        for c in CASES]


@pytest.mark.parametrize("bad", _params())
def test_bad_input_exits_2_with_one_line_and_changes_nothing(bad, isolated, capsys):
    world, cwd = isolated
    argv = [arg.format(w=world, closed=_closed_port()) for arg in bad.argv]
    before = snapshot(world, cwd)
    status = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert lines[0].startswith("bioscan5m"), err
    assert bad.expect.format(w=world) in lines[0]
    assert snapshot(world, cwd) == before, "inputs changed or files were left behind"


def _commands() -> set[str]:
    """Every command and sub-task the parser offers (``benchmark dna``, ``cache prune`` count as their own)."""
    parser = build_parser()
    commands = set()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        tasks = [a for a in sub._actions if isinstance(a, type(parser._subparsers._group_actions[0]))]
        commands |= {f"{name} {task}" for task in tasks[0].choices} if tasks else {name}
    return commands


def test_every_command_is_in_the_corpus():
    commands = _commands()
    covered = {" ".join(c.argv[:2]) if " ".join(c.argv[:2]) in commands else c.argv[0] for c in CASES}
    missing = sorted(commands - covered)
    assert not missing, f"add bad-input cases for: {', '.join(missing)}"


def test_unexpected_errors_are_one_line_internal_errors_with_a_traceback_on_demand(world, monkeypatch, capsys):
    def broken(args):
        raise IndexError("list index out of range")

    parser_default = ["stats", str(world / "meta.csv")]
    from bioscan5m import cli

    real_build = cli.build_parser

    def build(*command):
        parser = real_build(*command)
        parser._subparsers._group_actions[0].choices["stats"].set_defaults(func=broken)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    assert main(parser_default) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: IndexError" in err[0] and "--debug" in err[0]
    with pytest.raises(IndexError):
        main(["--debug", *parser_default])
    monkeypatch.setenv("BIOSCAN5M_DEBUG", "1")
    with pytest.raises(IndexError):
        main(parser_default)


def test_interrupt_and_sigterm_clean_up_and_exit_130_143(world, tmp_path, monkeypatch, capsys):
    import signal

    from bioscan5m import cli
    from bioscan5m.fileio import atomic_write

    out = tmp_path / "out"

    def writes_then_stops(kind):
        def run(args):
            with atomic_write(Path(args.out) / "split_stats.tsv") as handle:
                handle.write("half")
                if kind == "int":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signal.SIGTERM)
        return run

    real_build = cli.build_parser
    for kind, status, word in (("int", 130, "interrupted"), ("term", 143, "terminated")):
        def build(*command, kind=kind):
            parser = real_build(*command)
            parser._subparsers._group_actions[0].choices["stats"].set_defaults(func=writes_then_stops(kind))
            return parser

        monkeypatch.setattr(cli, "build_parser", build)
        assert main(["stats", str(world / "meta.csv"), "--out", str(out)]) == status
        assert capsys.readouterr().err.strip() == f"bioscan5m stats: {word}"
        assert not out.exists(), "the output folder made for the run is removed again"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_force_lets_an_output_replace_an_input(world, tmp_path, isolated):
    target = tmp_path / "queries.fasta"
    target.write_bytes((world / "q.fasta").read_bytes())
    argv = ["identify", "--reference", str(world / "meta.csv"), "--queries", str(target), "--out", str(target)]
    assert main(argv) == 2
    assert main([*argv, "--force"]) == 0
    assert target.read_text().startswith("query")


def test_a_device_output_is_written_into_never_replaced(world, tmp_path, isolated):
    assert main(["identify", "--reference", str(world / "meta.csv"), "--queries", str(world / "q.fasta"),
                 "--out", "/dev/null", "--force"]) == 0
    assert Path("/dev/null").is_char_device()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions")
def test_non_writable_output_folder_is_refused_before_work(world, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["stats", str(world / "meta.csv"), "--out", str(locked / "stats")]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_zip_bomb_is_refused_and_nothing_is_extracted(tmp_path):
    from bioscan5m.data.download import STATE_DIR, extract_archive
    from bioscan5m.errors import BioscanError

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bioscan5m/metadata/zeros.csv", b"\0" * (8 << 20))
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(BioscanError, match=r"expands \d[\d,]*-fold"):
        extract_archive(bomb, tmp_path / "root")
    assert [p.name for p in (tmp_path / "root").iterdir()] == [STATE_DIR]


@pytest.mark.parametrize(("members", "reason"), [
    ({"a": b"x", "a/b.jpg": b"y"}, "as a folder"),
    ({"x" * 300 + ".jpg": b"y"}, "longer than 255 bytes"),
])
def test_zip_members_that_cannot_be_files_are_refused(tmp_path, members, reason):
    from bioscan5m.data.download import extract_archive
    from bioscan5m.errors import BioscanError

    archive_path = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(BioscanError, match=reason):
        extract_archive(archive_path, tmp_path / "root")


def test_remote_code_runs_only_when_trusted(world, monkeypatch):
    from bioscan5m.embeddings.encoders import HuggingFaceDnaEncoder, remote_code_trusted
    from bioscan5m.errors import BioscanError

    with pytest.raises(BioscanError, match="runs its own Python code"):
        HuggingFaceDnaEncoder(str(world / "remote_code")).load()
    with remote_code_trusted():
        assert HuggingFaceDnaEncoder(str(world / "remote_code")).trust_remote_code
    assert HuggingFaceDnaEncoder(str(world / "remote_code"), trust_remote_code=True).trust_remote_code


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    from safetensors.numpy import save_file

    from bioscan5m.fileio import atomic_path, current_umask

    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"a": np.zeros(2, np.float32)}, str(tmp))  # safetensors writes a 0600 file of its own
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~current_umask()


def test_image_members_are_bounded_in_memory(tmp_path, monkeypatch):
    from bioscan5m.data import images
    from bioscan5m.errors import BioscanError

    root = write_synthetic_dataset(tmp_path / "ds", 3, images=True, seed=0)
    store = images.ImageStore.open(root, "cropped_256", use_cache=False)
    processid = (root / METADATA_CSV).read_text().splitlines()[1].split(",")[0]
    assert store.load(processid).size
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(BioscanError, match="over the 100-byte limit"):
        store.load(processid)


def test_species_column_missing_is_said_not_silent(tmp_path, capsys):
    table = tmp_path / "genus_only.tsv"
    table.write_text("processid\tgenus_name\tnucleotides\nA1\tAus\tACGTACGTAC\n")
    assert main(["stats", str(table)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    expected = f"bioscan5m stats: warning: {table}: no species column (species or species_name): no record is "
    assert err == [expected + "named to species"]


def test_probe_knn_holdout_on_fasta_is_a_clean_error(world, tmp_path, capsys, isolated):
    # FASTA records have no taxonomy; the taxa array pandas gives is read-only and used to be shuffled in place
    assert main(["probe", "knn", "--model", "kmer-profile-3", "--data", str(world / "q.fasta"), "--holdout", "0.3",
                 "--out", str(tmp_path / "knn")]) == 2
    assert "no species can be held out" in capsys.readouterr().err
    assert not (tmp_path / "knn").exists()


def test_synth_of_one_record_is_a_dataset(tmp_path):
    # used to fail (IndexError) when no species was seen or unseen; one record is a valid, if tiny, dataset
    assert main(["synth", "--out", str(tmp_path / "one"), "--records", "1"]) == 0
    assert len((tmp_path / "one" / METADATA_CSV).read_text().splitlines()) == 2
    with zipfile.ZipFile(tmp_path / "one" / "BIOSCAN_5M_cropped_256.zip") as archive:
        assert len(archive.namelist()) == 1


def test_sigterm_while_building_a_blast_database_leaves_no_build_folder(world, isolated, tmp_path, monkeypatch,
                                                                        capsys):
    import signal

    import bioscan5m.peers.blast
    import bioscan5m.peers.programs

    building = []

    def killed_while_building(fasta, prefix):
        building.append(Path(prefix).parent)
        Path(f"{prefix}.nsq").write_bytes(b"half a database")
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(bioscan5m.peers.programs, "find_program", lambda name: name)
    monkeypatch.setattr(bioscan5m.peers.blast, "make_blast_db", killed_while_building)
    cache = tmp_path / "cache_dir"
    status = main(["identify", "--reference", str(world / "meta.csv"), "--queries", str(world / "q.fasta"),
                   "--out", str(tmp_path / "hits.tsv"), "--method", "blast", "--cache-dir", str(cache)])
    assert status == 143 and capsys.readouterr().err.strip() == "bioscan5m identify: terminated"
    assert building and building[0].name.startswith(".blastdb-") and not building[0].exists()
    assert not [path for path in cache.rglob("*") if path.name.startswith(".blastdb-")]
    assert not (tmp_path / "hits.tsv").exists()


def test_prepared_output_takes_back_only_empty_folders_it_added(tmp_path):
    from bioscan5m.fileio import prepared_output

    out = tmp_path / "out"
    (out / "kept").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt), prepared_output(out):
        (out / "reduced" / "umap").mkdir(parents=True)
        (out / "checkpoints" / "step-1").mkdir(parents=True)
        (out / "checkpoints" / "step-1" / "model.safetensors").write_bytes(b"done")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "kept"]  # finished work stays
    with pytest.raises(ValueError), prepared_output(tmp_path / "new" / "deeper"):
        (tmp_path / "new" / "deeper" / "sub").mkdir(parents=True)
        raise ValueError
    assert not (tmp_path / "new").exists()


def test_hub_model_offline_fails_at_once_with_one_line(world, isolated, monkeypatch, capsys):
    from bioscan5m.embeddings.encoders import HuggingFaceImageEncoder
    from bioscan5m.errors import BioscanError

    monkeypatch.setenv("HF_ENDPOINT", "http://nonexistent.invalid")
    out = world.parent / "hub_out"
    assert main(["embed", "--data", str(world / "q.fasta"), "--encoder", "hf-dna:someone/no-such-model",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach nonexistent.invalid" in err[0] and "local Hugging Face cache" in err[0]
    assert not out.exists()
    with pytest.raises(BioscanError, match="cannot reach nonexistent.invalid"):
        HuggingFaceImageEncoder("someone/no-such-image-model").load()


def test_checkpoints_and_saved_weights_get_ordinary_permissions(tmp_path):
    import torch
    from torch import nn

    from bioscan5m.fileio import current_umask
    from bioscan5m.models.weights import save_weights
    from bioscan5m.train.checkpoint import save_checkpoint

    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_weights(model, tmp_path / "model.safetensors")
    folder = save_checkpoint(tmp_path / "checkpoints", model=model, optimizer=optimizer, state={"step": 1})
    ordinary = 0o666 & ~current_umask()
    written = [tmp_path / "model.safetensors", *folder.iterdir()]
    assert len(written) >= 4 and {path.stat().st_mode & 0o777 for path in written} == {ordinary}
