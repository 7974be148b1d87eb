import io
import time

from tqdm import tqdm

from nclab.progress import busy, progress


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_bar_on_a_terminal_lines_elsewhere():
    assert isinstance(progress(range(3), file=_Tty()), tqdm)
    out = io.StringIO()
    assert list(progress(range(3), desc="work", unit="step", every=0.0, file=out)) == [0, 1, 2]
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("work: 1/3 step") and lines[-1].startswith("work: 3/3 step")
    quiet = io.StringIO()
    assert sum(progress(range(5), file=quiet)) == 10 and quiet.getvalue() == ""  # short work: silent


def test_announce_says_each_stage_at_once():
    out = io.StringIO()
    bar = progress(total=4, initial=1, desc="federated rounds", unit="round", announce=True, file=out)
    bar.set_postfix_str("round 2/4: 3 clients training")
    assert out.getvalue().startswith("federated rounds: 1/4 round (round 2/4: 3 clients training)")
    bar.update(1)
    bar.close()
    assert "2/4" in out.getvalue().splitlines()[-1]


def test_busy_beats_only_for_long_work():
    out = io.StringIO()
    with busy("measuring", every=0.05, file=out):
        time.sleep(0.3)
    assert out.getvalue().startswith("measuring: ") and out.getvalue().rstrip().endswith(" s")
    out = io.StringIO()
    with busy("measuring", file=out):
        pass
    assert out.getvalue() == ""
    tty = _Tty()
    with busy("measuring", file=tty, tick=0.01):
        time.sleep(0.05)
    assert "measuring" in tty.getvalue()
