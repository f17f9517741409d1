"""Spies on functions of the code under test: they record what each call was given, then call the function."""

from collections.abc import Callable
from typing import Any


def record_calls(monkeypatch, owner: Any, name: str, noted: Callable[..., Any]) -> list:
    """Replace `owner.name` (for the test) by a wrapper that appends `noted(*args, **kwargs)` to the returned list
    at each call, then calls the original."""
    calls, original = [], getattr(owner, name)

    def recorded(*args, **kwargs):
        calls.append(noted(*args, **kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls
