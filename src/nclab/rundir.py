"""The one reader and writer of a run directory (docs/contracts.md, docs/reliability.md).

A run directory is the interface between training and everything after it (reports, tables, advice).
:class:`RunDir` is its one contract: the trainer and the federated runner write through it, ``nclab
report``, ``nclab table``, ``nclab ufm advise --run`` and ``nclab sweep`` read through it. Its promises:

- **One writer.** :class:`RunLock` holds an exclusive ``fcntl.flock`` on ``<run>/.lock`` for the
  lifetime of a run; a second process gets an :class:`~nclab.errors.NclabError` naming the holder's
  PID. The kernel drops the lock when the holder dies, so a killed run can always be resumed.
- **Rows appended whole.** :func:`append_row` writes each ``metrics.jsonl`` row with one ``os.write``
  of the complete line on an ``O_APPEND`` descriptor, then ``fsync``. Only a crash in the middle of
  that write can tear a line, and only the last one; :func:`read_rows` reports such a line instead of
  failing, and resume drops it (the checkpoint says which rows are valid).
- **Atomic rewrites.** Truncation on resume (:meth:`RunDir.truncate`), ``config.yaml``, ``classes.json``
  and geometry files are written to a temporary file in the same directory and ``os.replace``-d; a
  temporary left by a kill is removed on the next start (:meth:`RunDir.remove_stale_temporaries`).
- **Safe checkpoints.** ``checkpoints/last.pt`` is written atomically and holds only tensors and plain
  containers, so :meth:`RunDir.load_checkpoint` never unpickles code (:mod:`nclab.checkpoint`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nclab.errors import DataError, NclabError

__all__ = [
    "RunDir",
    "RunDirWarning",
    "RunLock",
    "RunLockedError",
    "append_row",
    "clean",
    "duplicate_evaluations",
    "read_rows",
    "with_meta",
    "write_text_atomic",
]

METRICS = "metrics.jsonl"
LOCK = ".lock"
CONFIG = "config.yaml"
CLASSES = "classes.json"
STAGE2_DONE = "stage2.done"


# -- the contract --------------------------------------------------------------------------------------
class RunDir:
    r"""One run directory (docs/contracts.md): every file of a run is written and read through this class.

    Constructing it does no I/O. The write side is for the run's one writer (take :meth:`lock` first);
    the read side may be used by anyone, at any time, also while the run is being written.

    Example:
        >>> import tempfile
        >>> run = RunDir(tempfile.mkdtemp())
        >>> run.create("train: {epochs: 1}\n", {"names": ["a", "b"], "counts": [5, 1]})
        >>> run.append({"epoch": 1, "acc/all": float("nan")})
        >>> run.rows(), run.classes()["counts"], run.is_complete()
        (([{'epoch': 1, 'acc/all': None}], False), [5, 1], True)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metrics_path = self.path / METRICS
        self.config_path = self.path / CONFIG
        self.classes_path = self.path / CLASSES
        self.checkpoint_path = self.path / "checkpoints" / "last.pt"
        self.geometry_dir = self.path / "geometry"
        self.stage2_path = self.path / STAGE2_DONE

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- write side -------------------------------------------------------------------------------
    def lock(self) -> RunLock:
        """The run's :class:`RunLock`, acquired (creating the directory); release it when the run ends."""
        return RunLock(self.path).acquire()

    def check_new(self) -> None:
        """Raise unless the directory is free for a new run (it holds no ``metrics.jsonl``)."""
        if self.metrics_path.exists():
            raise NclabError(
                f"{self.path} already holds a run: use --resume {self.path} or another --run-dir"
            )

    def create(
        self, config_text: str, classes: dict[str, Any], extra_json: dict[str, Any] | None = None
    ) -> None:
        """Start a new run: ``checkpoints/``, ``geometry/``, ``config.yaml`` (``config_text``, its
        ``meta`` included, see :func:`with_meta`), ``classes.json`` and each ``extra_json`` file (name ->
        JSON value, e.g. ``{"clients.json": {...}}``).

        Raises:
            NclabError: the directory already holds a run (:meth:`check_new`).
        """
        self.check_new()
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.geometry_dir.mkdir(exist_ok=True)
        self.write_config(config_text)
        write_text_atomic(self.classes_path, json.dumps(classes))
        for name, value in (extra_json or {}).items():
            write_text_atomic(self.path / name, json.dumps(value, indent=1))

    def write_config(self, config_text: str) -> None:
        """Replace ``config.yaml`` atomically (a sweep's run that starts from another rewrites it)."""
        write_text_atomic(self.config_path, config_text)

    def append(self, row: dict[str, Any]) -> None:
        """Append one evaluation row to ``metrics.jsonl`` (NaN/inf -> ``null``; :func:`append_row`)."""
        append_row(self.metrics_path, row)

    def write_geometry(self, epoch: int, *, stage: str | None = None, **arrays: Any) -> None:
        """``geometry/<epoch>.npz`` (``<epoch>_<stage>.npz`` for a stage-2 row) holding ``arrays``,
        written through a temporary file and ``os.replace``."""
        self.geometry_dir.mkdir(parents=True, exist_ok=True)
        name = f"{epoch}.npz" if stage is None else f"{epoch}_{stage}.npz"
        import numpy as np

        _replace_atomic(self.geometry_dir / name, lambda fh: np.savez(fh, **arrays))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``checkpoints/last.pt`` atomically; ``state`` may hold only tensors and plain
        containers of primitives (:func:`nclab.checkpoint.check_safe`, else ``TypeError``)."""
        from nclab import checkpoint

        checkpoint.save_atomic(state, self.checkpoint_path)

    def load_checkpoint(self, required: Iterable[str] = ()) -> dict[str, Any]:
        """``checkpoints/last.pt``, loaded without unpickling code.

        Raises:
            DataError: missing, damaged, unsafe, or lacking a ``required`` key.
        """
        from nclab import checkpoint

        return checkpoint.load(self.checkpoint_path, required=required)

    def truncate(self, keep: Callable[[dict[str, Any]], bool]) -> None:
        """On resume: rewrite ``metrics.jsonl`` atomically with only the complete rows for which
        ``keep(row)`` is true (those the checkpoint covers); a torn last line is dropped with a
        warning. A missing file stays missing."""
        if not self.metrics_path.exists():
            return
        rows, torn = self.rows()
        if torn:
            warnings.warn(
                f"{self.metrics_path}: the final line was cut short (a crash during the write); dropping it",
                stacklevel=2,
            )
        kept = [r for r in rows if keep(r)]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))

    def mark_stage2_done(self, method: str) -> None:
        """Record that the stage-2 row of ``method`` is written (a resume then keeps it)."""
        self.stage2_path.write_text(method)

    def stage2_done(self) -> bool:
        return self.stage2_path.exists()

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the ``.<name>.tmp-<pid>`` files that a process killed during an atomic write left in
        the run directory, ``checkpoints/`` and ``geometry/``; call with the lock held. Returns the
        removed paths."""
        removed = []
        for sub in (self.path, self.checkpoint_path.parent, self.geometry_dir):
            if sub.is_dir():
                for f in sub.glob(".*.tmp-*"):
                    try:
                        f.unlink()
                        removed.append(f)
                    except FileNotFoundError:
                        pass
        return removed

    # -- read side --------------------------------------------------------------------------------
    def rows(self) -> tuple[list[dict[str, Any]], bool]:
        """``(rows, torn)`` of ``metrics.jsonl`` (:func:`read_rows`; ``DataError`` when missing or
        damaged before its last line)."""
        return read_rows(self.metrics_path)

    def config(self) -> Any:
        """``config.yaml`` as an OmegaConf ``DictConfig``, ``meta`` included.

        Raises:
            DataError: the file is missing, or is not a readable YAML mapping; the message names the
                file and what to do.
        """
        from omegaconf import DictConfig, OmegaConf

        path = self.config_path
        if not path.is_file():
            raise DataError(f"cannot resume: {path} does not exist (is {self.path} a run directory?)")
        try:
            raw = OmegaConf.load(path)
            if not isinstance(raw, DictConfig):
                raise ValueError(f"it holds a {type(raw).__name__}, not a mapping")
            if len(raw) == 0:
                raise ValueError("it is empty")
        except Exception as err:  # noqa: BLE001 - yaml's scanner/parser errors and OmegaConf's
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(
                f"cannot resume: {path} is not a readable config ({first}); it is the resolved config the run "
                "was started with: restore it (from a backup, or rewrite it from the original config and "
                "overrides) or start a new run"
            ) from None
        return raw

    def classes(self) -> dict[str, list]:
        """``classes.json`` as ``{"names": [str], "counts": [int]}`` (names default to ``"0"``, ...).

        Raises:
            DataError: the file is missing, not JSON, or has no list of integer counts.
        """
        data = self.read_json(CLASSES)
        try:
            counts = [int(c) for c in data["counts"]]
            names = [str(n) for n in (data.get("names") or range(len(counts)))]
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise DataError(
                f"{self.classes_path} is unreadable ({type(err).__name__}: {err}); it must hold "
                '{"names": [...], "counts": [...]}'
            ) from None
        if len(names) != len(counts):
            raise DataError(f"{self.classes_path} has {len(names)} names for {len(counts)} counts")
        return {"names": names, "counts": counts}

    def read_json(self, name: str) -> Any:
        """The JSON file ``name`` of the run (``classes.json``, ``clients.json``, ...).

        Raises:
            DataError: it is missing or not JSON.
        """
        p = self.path / name
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            raise DataError(f"{p} does not exist (is {self.path} a run directory?)") from None
        except (ValueError, OSError) as err:
            raise DataError(f"{p} is unreadable ({type(err).__name__}: {err})") from None

    def geometry(self, problems: list[str] | None = None) -> dict[int, dict[str, Any]]:
        """Every ``geometry/<epoch>.npz`` as ``{epoch: {name: array}}``, loaded with
        ``allow_pickle=False``. A file that cannot be read is skipped and described in ``problems``
        (when given) and a warning."""
        import zipfile

        import numpy as np

        out: dict[int, dict[str, Any]] = {}
        if not self.geometry_dir.is_dir():
            return out
        for f in sorted(
            self.geometry_dir.glob("*.npz"), key=lambda q: int(q.stem) if q.stem.isdigit() else -1
        ):
            if not f.stem.isdigit():
                continue
            try:
                with open(f, "rb") as fh, np.load(fh, allow_pickle=False) as z:  # fh closed on errors too
                    out[int(f.stem)] = {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                msg = f"{f} is unreadable ({type(err).__name__}); its geometry is not drawn"
                if problems is not None:
                    problems.append(msg)
                warnings.warn(msg, RunDirWarning, stacklevel=2)
        return out

    def budget(self) -> dict[str, Any]:
        """What the run promised to do, from its own ``config.yaml``: ``{"kind": "fed", "round": R}``
        for a federated run, else ``{"kind": "train", "epoch": E, "stage2": bool}`` (a stage-2 method
        appends a row with ``stage`` after the last epoch)."""
        cfg = self.config()
        if "rounds" in cfg:
            return {"kind": "fed", "round": int(cfg.rounds)}
        method = str(cfg.stage2.method) if "stage2" in cfg else "none"
        return {"kind": "train", "epoch": int(cfg.train.epochs), "stage2": method != "none"}

    def is_complete(self) -> bool:
        """True when the last row reaches :meth:`budget`: the last round of a federated run; the last
        epoch of a training run, and its stage-2 row when its config names a stage-2 method. A missing
        or unreadable ``config.yaml`` or ``metrics.jsonl`` is not complete."""
        if not self.config_path.is_file() or not self.metrics_path.is_file():
            return False
        try:
            budget = self.budget()
            rows, _ = self.rows()
        except (DataError, AttributeError, KeyError, ValueError):
            return False
        if not rows:
            return False
        last = rows[-1]
        if budget["kind"] == "fed":
            return last.get("round") == budget["round"]
        return last.get("epoch") == budget["epoch"] and ("stage" in last) == budget["stage2"]

    def is_diverged(self) -> bool:
        """True when a row is flagged ``diverged`` (a non-finite loss, or exploded features): the run
        stopped for good, re-running it would diverge again."""
        if not self.metrics_path.is_file():
            return False
        try:
            rows, _ = self.rows()
        except DataError:
            return False
        return any(r.get("diverged") for r in rows)

    def seed(self) -> int | None:
        """The run's seed from ``config.yaml``: ``train.seed``, or a federated run's ``seed``.

        Raises:
            DataError: ``config.yaml`` is missing or not a readable mapping.
        """
        cfg = self.config()
        seed = cfg.get("seed") if "rounds" in cfg else cfg.get("train", {}).get("seed")
        return None if seed is None else int(seed)

    def weight_decays(self) -> tuple[float | None, float | None]:
        """``(lambda_W, lambda_H)`` from ``config.yaml``: a training run's ``optim.head_weight_decay``
        (else ``optim.weight_decay``) and ``optim.weight_decay``; a federated run's
        ``local.weight_decay`` (or the earlier flat ``weight_decay``) for both. ``(None, None)`` when
        the run has no ``config.yaml`` or names no weight decay.

        Raises:
            DataError: ``config.yaml`` exists but is not a readable mapping.
        """
        if not self.config_path.is_file():
            return None, None
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(self.config())
        optim, local = cfg.get("optim") or {}, cfg.get("local") or {}
        wd = optim.get("weight_decay", local.get("weight_decay", cfg.get("weight_decay")))
        head = optim.get("head_weight_decay")
        lw = head if head is not None else wd
        return (None if lw is None else float(lw)), (None if wd is None else float(wd))


class RunDirWarning(UserWarning):
    """A run directory is readable but not as its writer promised (torn last row, duplicated rows,
    an unreadable geometry file)."""


class RunLockedError(NclabError):
    """Another live process holds the run directory's lock."""


class RunLock:
    """An exclusive lock on a run directory, held for the lifetime of a run.

    ``fcntl.flock`` on ``<run_dir>/.lock``, which holds the holder's PID. The kernel releases the lock
    when the holder's process dies (even by ``kill -9``), so a lock is never stale. A second process
    (or a second ``RunLock`` in the same process) gets :class:`RunLockedError`.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with RunLock(d):
        ...     RunLock(d).acquire()
        Traceback (most recent call last):
        ...
        nclab.rundir.RunLockedError: ...
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (creating the run directory); raise :class:`RunLockedError` if it is held."""
        import fcntl

        if self._fd is not None:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_pid(self.path)
            who = f"process {holder}" if holder else "another process"
            raise RunLockedError(
                f"{self.dir} is in use by {who} (lock {self.path}); wait for it to finish, stop it, "
                "or use another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (idempotent). The PID file stays; an unlocked file means nobody holds it."""
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock goes with its object (and always with the process)
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- line files and atomic writes (the primitives under RunDir) ----------------------------------------
def clean(x: Any) -> Any:
    """``x`` with every non-finite float (NaN, +-inf) replaced by ``None``, recursively.

    JSON has no NaN: an undefined metric is written as ``null``.

    >>> clean({"a": float("nan"), "b": [1.0, float("inf")], "c": (2, 3)})
    {'a': None, 'b': [1.0, None], 'c': [2, 3]}
    """
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", None) == 0:  # numpy / torch scalar
        return clean(x.item())
    return x


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` (usually ``<run>/metrics.jsonl``).

    Non-finite floats become ``null``. The complete line is written with a single ``os.write`` on an
    ``O_APPEND`` descriptor and then ``fsync``-ed, so concurrent readers never see half a row and a
    crash can tear at most the final line.

    Args:
        path: the JSON-lines file; created if missing.
        row: a JSON-serialisable mapping.
    """
    data = (json.dumps(clean(row), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # only for very large rows on odd file systems
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], bool]:
    """The complete rows of a JSON-lines file and whether its final line was torn.

    A final line that is not valid JSON (a write cut short by a crash) is left out and reported with
    ``torn=True``; an invalid line anywhere else means the file was damaged otherwise and raises.

    Args:
        path: the JSON-lines file.

    Returns:
        ``(rows, torn)``.

    Raises:
        DataError: the file is missing, or a line other than the last is not a JSON object.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(f"{p} does not exist") from None
    lines = text.split("\n")
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    rows: list[dict[str, Any]] = []
    torn = False
    for j, (lineno, ln) in enumerate(numbered):
        try:
            row = json.loads(ln)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if j == len(numbered) - 1 and not text.endswith("\n"):
                torn = True
                break
            raise DataError(
                f"{p} line {lineno} is not a JSON object ({err}); only a final line cut short by a crash "
                "is tolerated: repair or remove the line"
            ) from None
        rows.append(row)
    return rows, torn


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory and
    ``os.replace``."""
    _replace_atomic(Path(path), lambda fh: fh.write(text.encode()))


def _replace_atomic(path: Path, write: Callable[[Any], Any]) -> None:
    """Call ``write(binary file)`` on ``.<name>.tmp-<pid>`` beside ``path``, fsync, and ``os.replace``
    it; a failed write leaves ``path`` as it was and no temporary."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def duplicate_evaluations(rows: Iterable[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """The ``(epoch, stage)`` keys that occur in more than one row, in order of first repetition.

    A run directory written by one process has each evaluation once; duplicates mean two writers (or
    a hand-merged file).

    >>> duplicate_evaluations([{"epoch": 1}, {"epoch": 2}, {"epoch": 1}, {"epoch": 2, "stage": "crt"}])
    [(1, None)]
    """
    seen: set[tuple[Any, Any]] = set()
    dup: list[tuple[Any, Any]] = []
    for r in rows:
        key = (r.get("epoch"), r.get("stage"))
        if key in seen and key not in dup:
            dup.append(key)
        seen.add(key)
    return dup


def with_meta(config_text: str, meta: dict[str, Any]) -> str:
    r"""``config_text`` followed by the run's ``meta`` block (one JSON value per key).

    >>> print(with_meta("seed: 1\n", {"nclab": "0.1", "counts": [5, 1]}), end="")
    seed: 1
    meta:
      nclab: "0.1"
      counts: [5, 1]
    """
    return config_text + "meta:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in meta.items())
