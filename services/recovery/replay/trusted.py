"""Stored event data back into its models without validating it a second time.

Everything in the event store was validated by these very models before it was appended and
written with ``model_dump(mode="json")``; re-validating it on a replay checks nothing new and
was most of a rebuild's time (the money checks run in Python for every amount). A loader
here only turns the JSON types back into the field types (nested models, tuples, datetimes,
decimals) and builds the model with ``model_construct``. A model whose fields it cannot
convert this way is validated as usual. ``tests/integration/test_replay_rebuild.py`` checks
that both ways give equal models for every event of a varied live run.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import from_json

M = TypeVar("M", bound=BaseModel)
Convert = Callable[[Any], Any]


class Unsupported(TypeError):
    """A field type the loader does not convert; the model is validated instead."""


def _optional(inner: Convert) -> Convert:
    return lambda v: None if v is None else inner(v)


def _tuple_of(inner: Convert | None) -> Convert:
    if inner is None:
        return tuple
    return lambda v: tuple([inner(x) for x in v])


def _list_of(inner: Convert) -> Convert:
    def convert(v: Any) -> list[Any]:
        return [inner(x) for x in v]

    return convert


def _converter(ann: Any) -> Convert | None:
    """How to turn the JSON value of a field of type ``ann`` into the field's value (None:
    as it is)."""
    origin = get_origin(ann)
    if origin is Annotated:
        return _converter(get_args(ann)[0])
    if origin is Literal:
        return None
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(ann) if a is not type(None)]
        converters = [_converter(a) for a in members]
        if len(members) == 1:
            return None if converters[0] is None else _optional(converters[0])
        if any(c is not None for c in converters):
            raise Unsupported(f"a union of converted types: {ann}")
        return None
    if origin is tuple:
        items = get_args(ann)
        if len(items) != 2 or items[1] is not Ellipsis:
            raise Unsupported(f"a fixed-size tuple: {ann}")
        return _tuple_of(_converter(items[0]))
    if origin is list:
        inner = _converter(get_args(ann)[0])
        return None if inner is None else _list_of(inner)
    if origin is dict or ann is Any or ann in (str, int, bool):
        return None
    if ann is float:
        return float
    if ann is AwareDatetime or (isinstance(ann, type) and issubclass(ann, datetime)):
        return datetime.fromisoformat
    if isinstance(ann, type) and issubclass(ann, Decimal):
        return Decimal
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return loader(ann)
    raise Unsupported(f"no trusted conversion for {ann!r}")


_REQUIRED = object()


class _Factory:
    def __init__(self, info: FieldInfo) -> None:
        self.info = info

    def __call__(self) -> Any:
        return self.info.get_default(call_default_factory=True, validated_data={})


def _default(info: FieldInfo) -> Any:
    """The field's default as the loader uses it: a constant, a factory, or required."""
    if info.is_required():
        return _REQUIRED
    return _Factory(info) if info.default_factory is not None else info.default


@functools.cache
def loader(model: type[M]) -> Callable[[dict[str, Any]], M]:
    """A function from the stored (JSON) data of ``model`` to the model.

    It sets ``__dict__`` and the fields set as ``model_construct`` does, minus its generic
    alias and extra handling, which cost more than the rest of a replay's fold; a model
    that needs those (post-init, private attributes, extra fields kept) is validated."""
    if model.__pydantic_post_init__ or model.__private_attributes__ or model.model_config.get("extra") == "allow":
        return model.model_validate
    try:
        fields = [
            (name, info.alias or name, _converter(info.annotation), info) for name, info in model.model_fields.items()
        ]
    except Unsupported:
        return model.model_validate
    if any(key != name for name, key, _, _ in fields):
        return model.model_validate  # aliases: none in the contract; not worth a slower loop
    return _compile(model, [(name, convert, _default(info)) for name, _, convert, info in fields])


def _compile(model: type[M], specs: list[tuple[str, Convert | None, Any]]) -> Callable[[dict[str, Any]], M]:
    """The loader as straight-line code, one statement per field: the loop it replaces,
    with its per-field unpacking and tests, was half of the loader's time."""
    env: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "_model": model,
                           "_names": frozenset(name for name, _, _ in specs)}  # fmt: skip
    lines = ["def load(data):", "    values = {}"]
    for i, (name, convert, default) in enumerate(specs):
        if not name.isidentifier():
            return _loop(model, specs)
        value = f"data[{name!r}]"
        if convert is not None:
            env[f"_c{i}"] = convert
            value = f"_c{i}({value})"
        lines += [f"    if {name!r} in data:", f"        values[{name!r}] = {value}"]
        if isinstance(default, _Factory):
            env[f"_d{i}"] = default
            lines.append(f"    else:\n        values[{name!r}] = _d{i}()")
        elif default is not _REQUIRED:
            env[f"_d{i}"] = default
            lines.append(f"    else:\n        values[{name!r}] = _d{i}")
    lines += [
        "    m = _new(_model)",
        "    _set(m, '__dict__', values)",
        "    _set(m, '__pydantic_fields_set__', data.keys() & _names)",
        "    _set(m, '__pydantic_extra__', None)",
        "    _set(m, '__pydantic_private__', None)",
        "    return m",
    ]
    exec("\n".join(lines), env)  # noqa: S102 - code built here from the model's own field names
    load: Callable[[dict[str, Any]], M] = env["load"]
    return load


def _loop(model: type[M], specs: list[tuple[str, Convert | None, Any]]) -> Callable[[dict[str, Any]], M]:
    names = frozenset(name for name, _, _ in specs)
    new = object.__new__
    setattr_ = object.__setattr__

    def load(data: dict[str, Any]) -> M:
        values: dict[str, Any] = {}
        for name, convert, default in specs:
            if name in data:
                value = data[name]
                values[name] = value if convert is None else convert(value)
            elif default is not _REQUIRED:
                values[name] = default() if isinstance(default, _Factory) else default
        m = new(model)
        setattr_(m, "__dict__", values)
        setattr_(m, "__pydantic_fields_set__", data.keys() & names)
        setattr_(m, "__pydantic_extra__", None)
        setattr_(m, "__pydantic_private__", None)
        return m

    return load


def load_json(model: type[M], text: str | bytes) -> M:
    """``model`` from its stored JSON, trusted."""
    loaded: M = loader(model)(from_json(text))
    return loaded
