from nclab import __version__
from nclab.cli import COMMANDS, build_parser, main


def test_help_lists_every_subcommand(capsys):
    parser = build_parser()
    text = parser.format_help()
    for name in COMMANDS:
        assert name in text


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: nclab" in capsys.readouterr().out


def test_version(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:  # in-process: a subprocess costs seconds of imports
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


def test_import_is_light(cli):
    import subprocess
    import sys

    from tests.conftest import cli_env

    code = "import sys, nclab; bad=[m for m in ('matplotlib','cvxpy','flwr') if m in sys.modules]; print(bad)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env())
    assert r.stdout.strip() == "[]", r.stderr
