import pytest

from bioscan5m.cli import build_parser, main
from bioscan5m.data.schema import parse_splits


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert commands, "no subcommands registered"
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: bioscan5m " + name in capsys.readouterr().out


def test_parse_splits_groups_and_combinations():
    assert parse_splits("train") == ("train",)
    assert parse_splits("val+train") == ("train", "val")
    assert parse_splits("seen") == ("train", "val", "test")
    assert parse_splits("unseen+pretrain") == ("pretrain", "key_unseen", "val_unseen", "test_unseen")
    assert len(parse_splits("all")) == 8


def _bioscan_csv(rows: list[str]) -> str:
    from bioscan5m.data.schema import COLUMN_NAMES

    return ",".join(COLUMN_NAMES) + "\n" + "".join(row + "\n" for row in rows)


_GOOD_ROW = "AAA1-20,S1,Aus bus,Arthropoda,Insecta,Diptera,Fam,,Aus,Aus bus,BOLD:AAA0001,ACGTACGT,Canada,,1,2,3,0.5,1,0,train,,0"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing_column.csv", _bioscan_csv([_GOOD_ROW]).replace(",chunk", "", 1), "chunk"),
        ("ragged.csv", _bioscan_csv([_GOOD_ROW, _GOOD_ROW + ",extra"]), ":3"),
        ("latin1.csv", _bioscan_csv([_GOOD_ROW.replace("Canada", "Canad\xe1")]), ":2"),
        ("letters.fasta", ">q1\nACGTACGT\n>q2\nACGTXQZ\n", ":4"),
        ("empty.fasta", ">q1\nACGTACGT\n>q2\n>q3\nACGT\n", "q2"),
    ],
)
def test_bad_input_gives_one_line_error_and_no_output(tmp_path, capsys, name, content, message):
    source = tmp_path / name
    source.write_bytes(content.encode("latin-1"))
    out = tmp_path / "stats"
    assert main(["stats", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(source) in err and message in err
    assert not out.exists()


def test_unknown_split_and_unsafe_zip_exit_2_without_traceback(tmp_path, capsys):
    import zipfile

    source = tmp_path / "meta.csv"
    source.write_text(_bioscan_csv([_GOOD_ROW]))
    assert main(["stats", str(source), "--split", "trian"]) == 2
    assert "unknown split 'trian'" in capsys.readouterr().err

    from bioscan5m.data.download import extract_archive
    from bioscan5m.errors import BioscanError

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../escape.txt", "x")
    with pytest.raises(BioscanError, match=r"\.\./escape\.txt"):
        extract_archive(archive, tmp_path / "root")
    assert not (tmp_path / "escape.txt").exists()


def test_the_console_command_exits_with_mains_status(tmp_path):
    """``python -m bioscan5m`` (and the installed ``bioscan5m``) run :func:`main` and exit with its status,
    the cycle collector's exit passes skipped: 0 for help, 2 with one line and no output on bad input."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "bioscan5m"]
    done = subprocess.run([*command, "stats", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "usage: bioscan5m stats" in done.stdout
    fasta = tmp_path / "queries.fasta"
    fasta.write_text(">q1\nACGT\n")
    refused = subprocess.run([*command, "identify", "--reference", str(tmp_path / "absent.tsv"), "--queries",
                              str(fasta), "--out", str(tmp_path / "out.tsv")], capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "absent.tsv" in refused.stderr
    assert not (tmp_path / "out.tsv").exists()


def test_a_command_is_parsed_without_importing_the_other_commands():
    """``bioscan5m identify ...`` builds only identify's parser: the other commands' modules (clustering's,
    the downloader's) are not imported; without a command every one is listed."""
    import subprocess
    import sys

    code = ("import sys; from bioscan5m.cli import build_parser; parser = build_parser('identify'); "
            "print(sorted(parser._subparsers._group_actions[0].choices), "
            "[m for m in ('bioscan5m.tasks.cluster', 'bioscan5m.data.download', 'requests') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['identify']", "[]"]
    assert {"identify", "cluster", "download"} <= set(build_parser()._subparsers._group_actions[0].choices)
    assert set(build_parser("nosuch")._subparsers._group_actions[0].choices) == set(
        build_parser()._subparsers._group_actions[0].choices)


def test_identify_makes_collections_rare_only_while_it_runs(monkeypatch):
    """``identify`` raises the cycle collector's thresholds for its run and restores them afterwards, also
    after an error, for a caller that goes on in the same process."""
    import argparse
    import gc

    from bioscan5m.cli import identify as command

    before = gc.get_threshold()
    during = []

    def fails(args):
        during.append(gc.get_threshold())
        raise ValueError("stop")

    monkeypatch.setattr(command, "_identify", lambda args: during.append(gc.get_threshold()) or 0)
    assert command.run(argparse.Namespace()) == 0
    monkeypatch.setattr(command, "_identify", fails)
    with pytest.raises(ValueError, match="stop"):
        command.run(argparse.Namespace())
    assert during == [(50_000, 20, 100)] * 2 and gc.get_threshold() == before
