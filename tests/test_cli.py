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


def test_closed_pipe_is_quiet(tmp_path):
    """`nclab ... | head -1`: the reader closes the pipe early; no traceback, the Unix exit code 141."""
    import subprocess
    import sys

    from tests.conftest import cli_env

    spec = tmp_path / "s.yaml"
    many = ["train.epochs=1"] * 100  # long command lines: 100 runs overflow the pipe's buffer
    spec.write_text(
        f"command: train\nbase: []\noverrides: {many}\naxes: {{a: {{x: []}}}}\nseeds: {list(range(100))}\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "nclab", "sweep", str(spec), "--out", str(tmp_path / "o"), "--dry-run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )  # fmt: skip
    assert p.stdout.readline()  # one line read, then the reader goes away
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err
