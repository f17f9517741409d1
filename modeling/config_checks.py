"""Checks of configuration fields, shared by the three configs: every field against its type annotation, and the
ranges that several configs share (positive sizes, probabilities, special token ids).

They run when a config is built, from Python or from a (hand-edited) config.json (`from_pretrained` -> `from_dict`
-> `__init__` -> `__post_init__`), and raise a `ValueError` naming the field, what it expects and what it was
given. Types are strict: an integer field takes an `int` only (not a bool, not a string, not a float even when it is
integral like 32.0, which a hand-edited config.json may hold: the error says to write 32), a boolean field takes
`true`/`false` only (the string "false" would read as True), and a float field takes an `int` or a `float` (not a
bool). transformers' own fields of `PreTrainedConfig` are transformers' to check.

Imported with a single-dot import, so each model's saved remote code carries this file along.
"""

import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, Union

from transformers import PreTrainedConfig

# What one value of a plain type is called, and several.
_TYPE_NAMES = {
    bool: ("a boolean (true or false)", "booleans"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    dict: ("a dict", "dicts"),
    type(None): ("None (null in config.json)", "None"),
}


def declared_field_types(config_class: type[PreTrainedConfig]) -> dict[str, Any]:
    """The fields that `config_class` and its parents below `PreTrainedConfig` declare, with their annotations
    (class variables excluded)."""
    declared = {}
    for klass in reversed(config_class.__mro__):
        if issubclass(klass, PreTrainedConfig) and klass is not PreTrainedConfig:
            declared.update(vars(klass).get("__annotations__", {}))
    return {name: annotation for name, annotation in declared.items() if typing.get_origin(annotation) is not ClassVar}


def matches_type(value: Any, expected: Any) -> bool:
    """Whether `value` is of the annotated type `expected`: a plain type, `X | Y`, `list[X]`, `tuple[X, ...]`,
    `tuple[X, Y]`, `dict[K, V]` or `Literal[...]`. An int is a float, a bool is neither."""
    origin, arguments = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return True
    if expected is None or expected is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(matches_type(value, argument) for argument in arguments)
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in arguments)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        if not isinstance(value, origin):
            return False
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            return len(value) == len(arguments) and all(map(matches_type, value, arguments))
        return all(matches_type(item, arguments[0]) for item in value) if arguments else True
    if origin is dict:
        key_type, value_type = arguments or (Any, Any)
        return isinstance(value, dict) and all(
            matches_type(key, key_type) and matches_type(item, value_type) for key, item in value.items()
        )
    return isinstance(value, expected)


def describe_type(expected: Any) -> str:
    """`expected` in words: "an integer", "a list of integers or None", "a tuple of 2 integers"."""
    origin, arguments = typing.get_origin(expected), typing.get_args(expected)
    if expected is None:
        expected = type(None)
    if origin in (Union, types.UnionType):
        words = list(dict.fromkeys(describe_type(argument) for argument in arguments if argument is not int))
        if int in arguments and float not in arguments:  # a float takes an int: "a number" says it
            words.insert(0, describe_type(int))
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in arguments)
    if origin in (list, tuple):
        items = _TYPE_NAMES.get(arguments[0], (None, "values"))[1] if arguments else "values"
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            return f"a tuple of {len(arguments)} {items}"
        return f"a {origin.__name__} of {items}"
    if origin is dict:
        return "a dict"
    return _TYPE_NAMES.get(expected, (f"a {getattr(expected, '__name__', expected)}", ""))[0]


def check_type(name: str, value: Any, expected: Any) -> None:
    """Raise a `ValueError` naming `name` unless `value` is of the annotated type `expected`."""
    if matches_type(value, expected):
        return
    given, culprit, fits = f"{value!r} ({type(value).__name__})", value, [expected]
    if isinstance(value, (list, tuple)):
        fits = _item_types(expected)
        odd = [item for item in value if not any(matches_type(item, item_type) for item_type in fits)]
        if odd:
            given, culprit = f"{value!r}, which holds {odd[0]!r} ({type(odd[0]).__name__})", odd[0]
    hint = ""
    if isinstance(culprit, float) and culprit.is_integer() and any(matches_type(int(culprit), t) for t in fits):
        hint = f"; write {int(culprit)}, not {culprit}"
    elif isinstance(culprit, str) and culprit.lower() in ("true", "false") and any(matches_type(True, t) for t in fits):
        hint = f"; the string {culprit!r} is not a boolean: write {culprit.lower()} without quotes (Python: {culprit.title()})"
    raise ValueError(f"`{name}` must be {describe_type(expected)}, got {given}{hint}.")


def _item_types(expected: Any) -> list[Any]:
    """The annotations of the items of the list and tuple types in `expected` (a union or a single type)."""
    arms = typing.get_args(expected) if typing.get_origin(expected) in (Union, types.UnionType) else (expected,)
    return [
        item_type
        for arm in arms
        if typing.get_origin(arm) in (list, tuple)
        for item_type in typing.get_args(arm) or (Any,)
        if item_type is not Ellipsis
    ]


def check_field_types(config: PreTrainedConfig) -> None:
    """Check every field that the config's class declares against its annotation (see `check_type`)."""
    for name, expected in declared_field_types(type(config)).items():
        check_type(name, getattr(config, name), expected)


def check_positive(config: PreTrainedConfig, names: Iterable[str]) -> None:
    """Raise a `ValueError` naming the first of the fields `names` that is not above zero."""
    declared = declared_field_types(type(config))
    for name in names:
        value = getattr(config, name)
        if value <= 0:
            kind = "number" if matches_type(0.5, declared.get(name, float)) else "integer"
            raise ValueError(f"`{name}` must be a positive {kind}, got {value}.")


def check_probabilities(config: PreTrainedConfig, names: Iterable[str]) -> None:
    """Raise a `ValueError` naming the first of the fields `names` (dropout rates, label smoothing) outside [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1), got {value}.")


def check_token_ids(config: PreTrainedConfig, names: Iterable[str], vocab_size: int) -> None:
    """Raise a `ValueError` naming the first of the special token fields `names` holding an id outside
    [0, vocab_size); a field may hold None, one id or a list of ids (`eos_token_id`)."""
    for name in names:
        value = getattr(config, name)
        for token_id in value if isinstance(value, list) else [value]:
            if token_id is not None and not 0 <= token_id < vocab_size:
                raise ValueError(f"`{name}` ({value}) must lie in [0, vocab_size={vocab_size}).")


__all__ = [
    "check_field_types",
    "check_positive",
    "check_probabilities",
    "check_token_ids",
    "check_type",
    "declared_field_types",
    "describe_type",
    "matches_type",
]
