"""Typed configs from YAML files and dotted overrides (OmegaConf structured configs), shared by
``nclab train`` and ``nclab fed``: unknown keys and wrong types become a ConfigError listing the
valid keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nclab.errors import ConfigError


def valid_keys(d: Any, prefix: str = "") -> list[str]:
    """Dotted keys of a (nested) config dict; ``kwargs`` dicts are free-form and listed as one key."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and k != "kwargs":
            out += valid_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def load_structured(
    schema_cls: type, path: str | Path | None, overrides: list[str] | None, what: str = "config"
) -> Any:
    """schema <- YAML file <- ``key=value`` overrides, returned as a dataclass instance."""
    schema = OmegaConf.structured(schema_cls)
    try:
        cfg = schema
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"config file {str(p)!r} does not exist")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(p))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"overrides must be key=value, got {bad}")
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        valid = ", ".join(valid_keys(OmegaConf.to_container(schema, resolve=False)))
        raise ConfigError(f"invalid {what}: {err.msg.splitlines()[0]}. Valid keys: {valid}") from None
