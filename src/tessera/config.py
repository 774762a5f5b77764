"""Typed configs in three layers: dataclass defaults -> a preset name or YAML file -> `key=value` overrides.

Every command that owns a config builds it with :func:`resolve_config` and writes the result with
:func:`save_config` into the directory it produces, so a run can always be reproduced from its own folder.

Presets are YAML files shipped in ``tessera/configs/`` and referred to by name (``cpu``, ``paper``);
a preset file may hold several sections, and a command reads only the section it owns
(e.g. ``simulate_radio`` for ``tessera simulate radio``) unless the file is flat.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from tessera.errors import ConfigError
from tessera.io import atomic_write_text

T = TypeVar("T")

PRESETS_DIR = Path(__file__).parent / "configs"


def available_presets() -> list[str]:
    """Names of the YAML presets shipped with tessera."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_yaml_source(source: str) -> dict[str, Any]:
    """Read a preset by name, or a YAML file by path, into a dict."""
    path = Path(source)
    if not path.suffix and (PRESETS_DIR / f"{source}.yaml").exists():
        path = PRESETS_DIR / f"{source}.yaml"
    if not path.exists():
        raise ConfigError(
            f"config '{source}' is neither a preset ({', '.join(available_presets()) or 'none'}) nor an existing YAML "
            "file"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its dotted key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' is not of the form key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _field_types(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where it is lossless (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"config key '{key}': {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"config key '{key}': {value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return _build(tp, value, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key '{key}': expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"config key '{key}': expected {tp.__name__}, got {value!r}")
    return value


def _build(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from defaults, then apply ``data`` on top; unknown keys are errors naming the key."""
    types_ = _field_types(cls)
    unknown = [k for k in data if k not in types_]
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown config key '{name}' (known: {', '.join(types_)})")
    base = cls()
    values = {}
    for name, tp in types_.items():
        full = f"{prefix}.{name}" if prefix else name
        if name not in data:
            continue
        current = getattr(base, name)
        if dataclasses.is_dataclass(current) and isinstance(data[name], dict):
            values[name] = _merge(current, data[name], full)
        else:
            values[name] = _coerce(data[name], tp, full)
    return dataclasses.replace(base, **values)


def _merge(obj: T, data: dict[str, Any], prefix: str = "") -> T:
    """Return a copy of the dataclass ``obj`` with the mapping ``data`` applied (recursively)."""
    types_ = _field_types(type(obj))
    values = {}
    for name, value in data.items():
        full = f"{prefix}.{name}" if prefix else name
        if name not in types_:
            raise ConfigError(f"unknown config key '{full}' (known: {', '.join(types_)})")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            values[name] = _merge(current, value, full)
        else:
            values[name] = _coerce(value, types_[name], full)
    return dataclasses.replace(obj, **values)


def _validate(obj: Any, key: str = "") -> None:
    """Run every ``validate`` of a config tree, nested sections first.

    Validation runs once the layers are all applied, so a combination reached in several overrides (e.g.
    size=50 before pixel_scale=3) is judged as a whole. A section whose ``validate`` takes an argument gets its
    full dotted key (``views.mild``), so its errors name ``views.mild.p_rot90``, never a bare ``p_rot90``.
    """
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            _validate(value, f"{key}.{field.name}" if key else field.name)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        if inspect.signature(validate).parameters:
            validate(key)
        else:
            validate()


def _nested(path: list[str], value: Any) -> dict[str, Any]:
    """``["a", "b"], v`` -> ``{"a": {"b": v}}``."""
    nested: Any = value
    for part in reversed(path):
        nested = {part: nested}
    return nested


def merge_overrides(obj: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Apply ``key.path=value`` strings (values parsed as YAML) to a dataclass config, checking keys and types;
    no validation (the caller validates once every layer is applied)."""
    for text in overrides:
        obj = _merge(obj, _nested(*parse_override(text)))
    return obj


def merge_values(obj: T, values: dict[str, Any] | None) -> T:
    """Apply ``{"key.path": value}`` typed values (command-line flags) without a YAML round trip, so
    ``--source on`` stays the string "on"; None values are skipped (flag not given). No validation."""
    for key, value in (values or {}).items():
        if value is not None:
            obj = _merge(obj, _nested(key.split("."), value))
    return obj


def apply_overrides(obj: T, overrides: list[str] | tuple[str, ...], values: dict[str, Any] | None = None) -> T:
    """Apply ``key.path=value`` strings, then typed ``values``, to a dataclass config; validate the result."""
    obj = merge_values(merge_overrides(obj, overrides), values)
    _validate(obj)
    return obj


def resolve_config(
    cls: type[T], source: str | None = None, overrides: list[str] | tuple[str, ...] = (), section: str | None = None,
    values: dict[str, Any] | None = None,
) -> T:
    """Defaults of ``cls`` -> preset/YAML ``source`` (its ``section`` if present) -> ``overrides`` -> typed
    ``values`` (the command's own flags, :func:`merge_values`)."""
    obj = cls()
    if source:
        data = load_yaml_source(source)
        if section is not None and section in data:
            data = data[section]
        elif section is not None and set(data) - set(_field_types(cls)):
            # A multi-section preset without this command's section contributes nothing to it.
            data = {}
        obj = _merge(obj, data)
    return apply_overrides(obj, overrides, values)


def to_dict(obj: Any) -> Any:
    """A dataclass config as plain YAML-safe Python (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_config(obj: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (``config.yaml`` inside ``path`` when it is a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    return atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))


def load_saved_config(cls: type[T], path: str | Path) -> T:
    """Read a ``config.yaml`` written by :func:`save_config` back into ``cls``."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    obj = _merge(cls(), load_yaml_source(str(path)))
    _validate(obj)
    return obj
