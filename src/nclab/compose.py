"""Composable configs: any number of YAML fragments merged left to right, then ``key=value`` overrides,
over a typed schema (OmegaConf structured config), shared by ``nclab train``, ``nclab fed`` and
``nclab sweep``.

A fragment may name its parents with a top-level ``defaults`` list, resolved relative to the fragment's
own folder and merged before it (depth first, each file at most once per chain)::

    # configs/methods/ldam_drw_cifar.yaml
    defaults: [ldam_drw.yaml]
    loss: {kwargs: {max_margin: 0.5}}

Fragments may refer to the composed config with OmegaConf interpolations, resolved after every file
and override is merged, so a method fragment follows the recipe it is composed with:

- ``${data.num_classes}``: any key of the composed config (e.g. a fixed-ETF head's d = K);
- ``${epoch_frac:0.8}``: ``round(0.8 * train.epochs)`` as an int (e.g. the epoch DRW or DRS starts).

The result is validated by the schema (unknown keys and wrong types are a
:class:`~nclab.errors.ConfigError` listing the valid keys) and returned fully resolved, together
with the list of files that went into it (what a run directory records in ``meta.sources``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nclab.errors import ConfigError

__all__ = ["compose", "expand_files", "is_config_file", "is_override", "split_args"]

YAML_SUFFIXES = (".yaml", ".yml")


def _epoch_frac(frac: Any, *, _root_: Any) -> int:
    return int(round(float(frac) * int(_root_.train.epochs)))


def _register_resolvers() -> None:
    if OmegaConf.has_resolver("epoch_frac"):
        return
    if hasattr(OmegaConf, "register_resolver") and "annotation_validation" in str(
        getattr(OmegaConf.register_resolver, "__doc__", "")
    ):
        OmegaConf.register_resolver("epoch_frac", _epoch_frac, annotation_validation="off")
    else:  # OmegaConf 2.3
        OmegaConf.register_new_resolver("epoch_frac", _epoch_frac)


_register_resolvers()


def is_config_file(item: str, root: str | Path = ".") -> bool:
    """True for a YAML file name (``*.yaml``/``*.yml``), False for a ``key=value`` override.

    A path may hold ``=`` in a folder name (a sweep's run directories are ``axis=choice/seed=N``, so a
    run's ``config.yaml`` is ``.../method=ce/seed=0/config.yaml``): an item with ``=`` is a path when
    the text before its first ``=`` holds a path separator (an override's key never does) or when it
    names an existing file, relative to ``root`` (the folder relative paths are read from).
    """
    if not item.lower().endswith(YAML_SUFFIXES):
        return False
    key = item.split("=", 1)[0]
    return "=" not in item or "/" in key or "\\" in key or (Path(root) / item).is_file()


def is_override(item: str, root: str | Path = ".") -> bool:
    """True for a ``key=value`` override (see :func:`is_config_file` for paths holding ``=``)."""
    return "=" in item and not is_config_file(item, root)


def split_args(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Command-line positionals -> (config files, ``key=value`` overrides); anything else is an error."""
    files, overrides = [], []
    for it in items:
        if is_override(it):
            overrides.append(it)
        elif is_config_file(it):
            files.append(it)
        else:
            raise ConfigError(f"{it!r} is neither a config file (*.yaml) nor a key=value override")
    return files, overrides


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot read config file {str(path)!r}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def expand_files(paths: Sequence[str | Path], _chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """The files to merge, parents (``defaults:``) first, as (resolved path, content without ``defaults``)."""
    out: list[tuple[Path, dict]] = []
    for p in paths:
        path = Path(p).resolve()
        if path in _chain:
            cycle = " -> ".join(str(c) for c in (*_chain, path))
            raise ConfigError(f"config defaults form a cycle: {cycle}")
        data = _read(path)
        parents = data.pop("defaults", None) or []
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, list) or not all(isinstance(x, str) for x in parents):
            raise ConfigError(f"{path}: defaults must be a list of config file paths, got {parents!r}")
        out += expand_files([path.parent / x for x in parents], (*_chain, path))
        out.append((path, data))
    return out


def compose(
    schema_cls: type,
    files: str | Path | Sequence[str | Path] | None,
    overrides: Sequence[str] | None = None,
    what: str = "config",
    *,
    ignore: Sequence[str] = ("meta",),
    moved: Mapping[str, str] | None = None,
) -> tuple[Any, list[str]]:
    """schema <- files (each after its ``defaults``), left to right <- ``key=value`` overrides.

    Args:
        schema_cls: the dataclass of the typed schema.
        files: one config file, several, or None (schema defaults only).
        overrides: dotted ``key=value`` overrides applied after every file.
        what: the name used in error messages.
        ignore: top-level keys dropped from every file (``meta`` of a run's own ``config.yaml``).
        moved: dotted keys of an earlier schema -> their new place; a file or override setting one (to a
            value, not a section) is a ConfigError naming where each went.

    Returns:
        ``(config, sources)``: the validated dataclass instance with every interpolation resolved, and
        the resolved paths of the files merged, in merge order.

    Raises:
        ConfigError: a missing or unreadable file, a defaults cycle, an unknown key, a wrong type, a
            malformed override or an interpolation that does not resolve.
    """
    if files is None:
        files = []
    elif isinstance(files, (str, Path)):
        files = [files]
    schema = OmegaConf.structured(schema_cls)
    parts = expand_files(list(files))
    for where, keys in [(str(p), _moved(d, moved or {})) for p, d in parts] + [
        ("overrides", [k for o in overrides or () if (k := o.split("=", 1)[0]) in (moved or {})])
    ]:
        if keys:
            raise ConfigError(
                f"{where} uses keys that moved: " + ", ".join(f"{k} moved to {moved[k]}" for k in keys)
            )
    try:
        cfg: DictConfig = schema
        for path, data in parts:
            for k in ignore:
                data.pop(k, None)
            try:
                cfg = OmegaConf.merge(cfg, OmegaConf.create(data))
            except OmegaConfBaseException as err:
                raise ConfigError(
                    f"invalid {what} in {path}: {err.msg.splitlines()[0]}. Valid keys: "
                    + ", ".join(valid_keys(OmegaConf.to_container(schema, resolve=False)))
                ) from None
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"overrides must be key=value, got {bad}")
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(cfg), [_display(p) for p, _ in parts]
    except OmegaConfBaseException as err:
        valid = ", ".join(valid_keys(OmegaConf.to_container(schema, resolve=False)))
        raise ConfigError(f"invalid {what}: {err.msg.splitlines()[0]}. Valid keys: {valid}") from None


def _moved(data: dict, moved: Mapping[str, str], prefix: str = "") -> list[str]:
    """The dotted keys of ``data`` set to a value (not a section) that ``moved`` lists."""
    out = []
    for k, v in data.items():
        if isinstance(v, dict):
            out += _moved(v, moved, f"{prefix}{k}.")
        elif f"{prefix}{k}" in moved:
            out.append(f"{prefix}{k}")
    return out


def valid_keys(d: Any, prefix: str = "") -> list[str]:
    """Dotted keys of a (nested) config dict; ``kwargs`` dicts are free-form and listed as one key.

    Example:
        >>> valid_keys({"name": "a", "opt": {"lr": 0.1, "kwargs": {"beta": 1}}})
        ['name', 'opt.lr', 'opt.kwargs']
    """
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            out += valid_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out
