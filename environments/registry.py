"""Registry of environments: versioned ids, `make(name, **config)`, and module discovery.

Each environment module registers its class with `@register`. Ids are `name-vN`; a bare name
resolves to the newest version. Modules are discovered, so a new environment is one new file.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

from environments.core import Environment, unknown_name

_REGISTRY: dict[str, dict[int, type[Environment]]] = {}
_NOT_ENVIRONMENTS = {"core", "registry", "reference", "gym_adapter"}
_discovered = False


def register(cls: type[Environment]) -> type[Environment]:
    """Class decorator: register an environment under `cls.name` and `cls.version`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no `name`")
    versions = _REGISTRY.setdefault(cls.name, {})
    if cls.version in versions and versions[cls.version] is not cls:
        raise ValueError(f"environment id {cls.name}-v{cls.version} registered twice")
    versions[cls.version] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import environments

    for info in pkgutil.iter_modules(environments.__path__):
        if info.name not in _NOT_ENVIRONMENTS and not info.name.startswith("_"):
            importlib.import_module(f"environments.{info.name}")
    _discovered = True


def names() -> list[str]:
    """Registered environment names (without version)."""
    _discover()
    return sorted(_REGISTRY)


def ids() -> list[str]:
    """Every registered versioned id."""
    _discover()
    return sorted(f"{n}-v{v}" for n, vs in _REGISTRY.items() for v in vs)


def lookup(name: str) -> type[Environment]:
    """The class behind a bare name (newest version) or a versioned id `name-vN`."""
    _discover()
    base, _, version = name.rpartition("-v")
    if base and version.isdigit() and base in _REGISTRY:
        if int(version) in _REGISTRY[base]:
            return _REGISTRY[base][int(version)]
        raise ValueError(unknown_name("environment id", name, ids()))
    if name in _REGISTRY:
        versions = _REGISTRY[name]
        return versions[max(versions)]
    raise ValueError(unknown_name("environment", name, names() + ids()))


def make(name: str, **config: Any) -> Environment:
    """Build an environment from its id and configuration, rejecting unknown options by name."""
    cls = lookup(name)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for environment {cls.name!r}; "
            f"accepted: {', '.join(sorted(fields))}"
        )
    return cls(**config)
