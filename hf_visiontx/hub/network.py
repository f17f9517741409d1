"""Bounded Hub requests: every HTTP request of a push or pull has a timeout, and a step that fails for a passing
reason (no connection, no answer in time, 408, 429, 502, 503, 504) is tried again a few times, waiting longer
each time. A step that still fails raises `HubGaveUp`, which says how many tries were made.

The timeout and the number of tries come from the caller (`hf-visiontx push/pull --timeout`), else from the
environment (`HF_VISIONTX_HUB_TIMEOUT`, `HF_VISIONTX_HUB_TRIES`), else the defaults below.
"""

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import _http as hub_http
from huggingface_hub.utils import set_client_factory

try:  # huggingface_hub >= 2 talks HTTP through httpx2, 1.x through httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    import httpx

TIMEOUT_ENV = "HF_VISIONTX_HUB_TIMEOUT"
TRIES_ENV = "HF_VISIONTX_HUB_TRIES"
DEFAULT_TIMEOUT_S = 30.0
"""Seconds to connect, to send, and to wait for each piece of an answer (not for a whole download)."""
DEFAULT_TRIES = 3
FIRST_WAIT_S = 1.0
"""Wait before the second try of a step; it doubles for each later try."""
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})

T = TypeVar("T")


@dataclass(frozen=True)
class HubLimits:
    """How long one request may take (`timeout`, seconds) and how often a step is tried (`tries`)."""

    timeout: float
    tries: int


class HubGaveUp(Exception):
    """A step that failed for a passing reason on every one of its `tries`; `__cause__` is the last failure."""

    def __init__(self, tries: int):
        super().__init__(f"gave up after {tries} tries")
        self.tries = tries


def hub_limits(timeout: float | None = None, tries: int | None = None) -> HubLimits:
    """The limits to use: the arguments where given, else `HF_VISIONTX_HUB_TIMEOUT` / `HF_VISIONTX_HUB_TRIES`,
    else 30 s and 3 tries.

    Raises:
        ValueError: naming the argument or variable when the timeout is not a positive number of seconds or the
            number of tries not a positive integer.
    """
    if timeout is None:
        timeout = _from_environment(TIMEOUT_ENV, float, DEFAULT_TIMEOUT_S)
        name = TIMEOUT_ENV
    else:
        name = "`timeout`"
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {timeout!r}.")
    if tries is None:
        tries = _from_environment(TRIES_ENV, int, DEFAULT_TRIES)
        name = TRIES_ENV
    else:
        name = "`tries`"
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise ValueError(f"{name} must be a whole number of tries, 1 or more, got {tries!r}.")
    return HubLimits(float(timeout), tries)


def _from_environment(variable: str, kind: type, default: float | int) -> float | int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        expected = "a positive number of seconds" if kind is float else "a whole number of tries, 1 or more"
        raise ValueError(f"{variable} must be {expected}, got {text!r}.") from None


@contextmanager
def bounded_requests(timeout: float) -> Iterator[None]:
    """Give every request huggingface_hub sends meanwhile `timeout` seconds to connect, to send, and for each piece
    of the answer, whatever timeout (often none) its caller asked for.

    huggingface_hub sends everything through one shared client that its client factory builds; the factory in place
    (the default one, or a user's with proxies) is wrapped here and put back afterwards.
    """
    previous = hub_http._GLOBAL_CLIENT_FACTORY  # no public getter; set_client_factory is the public setter
    limits = httpx.Timeout(timeout).as_dict()

    def bound(request: httpx.Request) -> None:  # runs before each request is sent, redirects included
        request.extensions["timeout"] = limits

    def factory() -> httpx.Client:
        client = previous()
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), bound]}
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(previous)


def is_transient(error: BaseException) -> bool:
    """Whether `error` may pass by itself: no connection, no answer in time, a dropped connection, or one of
    408, 429, 502, 503, 504."""
    if isinstance(error, httpx.TransportError):
        return True
    return isinstance(error, HfHubHTTPError) and status_of(error) in TRANSIENT_STATUSES


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a Hub error, None for other failures."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def with_tries(step: Callable[[], T], tries: int) -> T:
    """Run `step` up to `tries` times while it fails for a passing reason (`is_transient`), waiting 1 s, 2 s, 4 s...
    between tries. Other failures are raised at once.

    Raises:
        HubGaveUp: from the last failure, when every try failed for a passing reason.
    """
    attempt, wait = 1, FIRST_WAIT_S
    while True:
        try:
            return step()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == tries:
                raise HubGaveUp(tries) from error
        time.sleep(wait)
        attempt, wait = attempt + 1, wait * 2


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TRIES",
    "TIMEOUT_ENV",
    "TRIES_ENV",
    "HubGaveUp",
    "HubLimits",
    "bounded_requests",
    "hub_limits",
    "is_transient",
    "status_of",
    "with_tries",
]
