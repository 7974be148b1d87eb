"""Progress of long work: a tqdm bar on a terminal, plain lines otherwise.

tqdm's ``disable=None`` draws a bar only when the stream is a TTY; a log file or a CI job would get
nothing from it, so off a terminal :func:`progress` prints a plain line (``desc: i/total``) at most
every ``every`` seconds instead, and none at all for work that ends sooner. Progress goes to stderr, so
``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")


class _Lines(Generic[T]):
    """The off-terminal stand-in of a tqdm bar (``update``, ``set_postfix_str``, ``close``, iteration)."""

    def __init__(
        self,
        iterable: Iterable[T] | None,
        total: int | None,
        desc: str,
        unit: str,
        every: float,
        file: IO,
        initial: int = 0,
        announce: bool = False,
    ):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every, self.file, self.announce = every, file, announce
        self.n = initial
        self.postfix = ""
        self._t0 = self._last = time.monotonic()

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("progress(): nothing to iterate over; use update()")
        for x in self.iterable:
            yield x
            self.update(1)

    def __enter__(self) -> _Lines[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s
        if self.announce and s:  # a new stage of long work: say it now, not after `every` seconds
            self._last = time.monotonic()
            self._line(self._last)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        extra = f" ({self.postfix})" if self.postfix else ""
        print(
            f"{self.desc}: {self.n}{of} {self.unit}{extra}, {now - self._t0:.0f} s",
            file=self.file,
            flush=True,
        )

    def close(self) -> None:
        if self._last != self._t0:  # lines were printed: say that the work ended
            self._line(time.monotonic())


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    every: float = 10.0,
    file: IO | None = None,
    initial: int = 0,
    announce: bool = False,
) -> Any:
    """A progress bar over ``iterable`` (or updated by hand with ``update(n)``), shown on stderr.

    Args:
        iterable: what to iterate over; None to call ``update`` yourself.
        total: number of steps (default ``len(iterable)`` when it has one).
        desc: a short label.
        unit: what a step is ("round", "batch").
        every: off a terminal, seconds between plain lines.
        file: the stream (default ``sys.stderr``).
        initial: steps already done (a resumed run).
        announce: off a terminal, print a line at once on every ``set_postfix_str`` (the start of a
            long step, such as a federated round), not only every ``every`` seconds.

    Returns:
        A ``tqdm`` bar on a terminal, else an object with the same ``update``/``close``/iteration.

    Example:
        >>> import io
        >>> sum(progress(range(4), desc="sum", file=io.StringIO()))
        6
    """
    stream = file if file is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        from tqdm import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            file=stream,
            disable=None,
            leave=False,
            initial=initial,
        )
    return _Lines(iterable, total, desc, unit, every, stream, initial, announce)


@contextlib.contextmanager
def busy(desc: str, *, every: float = 10.0, file: IO | None = None, tick: float = 0.5) -> Iterator[None]:
    """Show that one long call (no steps to count) is still running: elapsed seconds beside ``desc``.

    A background thread refreshes a tqdm line on a terminal every ``tick`` seconds; off a terminal
    it prints ``desc: N s`` every ``every`` seconds, so work shorter than that prints nothing.

    Example:
        >>> import io
        >>> with busy("reading", file=io.StringIO()):
        ...     pass
    """
    stream = file if file is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    tty = bool(isatty is not None and isatty())
    done = threading.Event()
    t0 = time.monotonic()
    if tty:
        from tqdm import tqdm

        bar = tqdm(desc=desc, total=None, bar_format="{desc}: {elapsed}", file=stream, leave=False)

    def beat() -> None:
        while not done.wait(tick if tty else every):
            if tty:
                bar.refresh()
            else:
                print(f"{desc}: {time.monotonic() - t0:.0f} s", file=stream, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if tty:
            bar.close()
