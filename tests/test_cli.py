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
