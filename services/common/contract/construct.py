"""Building models from values that are already valid, without validating them again.

Validation belongs at the edges: what comes off Kafka, out of a request or out of a file
is validated once, into models. Inside, the domain derives new models from those (a
decision from a validated complaint and a validated policy), and validating each of them
again cost a third of the recovery service's CPU per complaint. :func:`constructor` gives
a keyword constructor that checks names (unknown and missing fields are still errors) but
not values, like ``model_construct`` at a fraction of its cost.

Use it only where every value comes from a validated model or from code that computes it
correctly (quantized money, derived ids); the tests validate what these constructors build
(``tests/unit/recovery/test_properties.py`` for the domain's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def constructor(model: type[M]) -> Callable[..., M]:
    """A keyword constructor for ``model`` that does not validate the values it is given."""
    build: Callable[..., M] = _compiled(model)
    return build


@functools.cache
def _compiled(model: type[BaseModel]) -> Callable[..., Any]:
    if model.__pydantic_post_init__ or model.__private_attributes__:
        raise TypeError(f"{model.__name__} needs its validation to be built (post-init or private fields)")
    fields = model.model_fields
    env: dict[str, Any] = {
        "_model": model, "_new": object.__new__, "_set": object.__setattr__, "_error": _error,
        "_names": frozenset(fields), "_required": frozenset(n for n, f in fields.items() if f.is_required()),
    }  # fmt: skip
    # Straight-line code, the dict in field order (the order pydantic serialises __dict__ in).
    items = []
    for i, (name, info) in enumerate(fields.items()):
        if info.is_required():
            items.append(f"{name!r}: values[{name!r}]")
        elif info.default_factory is not None:
            env[f"_f{i}"] = info.default_factory
            items.append(f"{name!r}: values[{name!r}] if {name!r} in values else _f{i}()")
        else:
            env[f"_d{i}"] = info.default
            items.append(f"{name!r}: get({name!r}, _d{i})")
    code = "\n".join([
        "def build(**values):",
        "    given = values.keys()",
        "    if not _required <= given or not given <= _names:",
        "        _error(_model, given, _required, _names)",
        "    get = values.get",
        "    obj = _new(_model)",
        "    _set(obj, '__dict__', {" + ", ".join(items) + "})",
        "    _set(obj, '__pydantic_fields_set__', set(given))",
        f"    _set(obj, '__pydantic_extra__', {'{}' if model.model_config.get('extra') == 'allow' else 'None'})",
        "    _set(obj, '__pydantic_private__', None)",
        "    return obj",
    ])  # fmt: skip
    exec(compile(code, f"<constructor of {model.__name__}>", "exec"), env)  # noqa: S102 - built from field names
    build: Callable[..., Any] = env["build"]
    return build


def _error(model: type[BaseModel], given: Any, required: frozenset[str], names: frozenset[str]) -> None:
    missing, unknown = sorted(required - given), sorted(given - names)
    raise TypeError(f"{model.__name__}: missing {missing}, unknown {unknown}")
