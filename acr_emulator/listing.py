"""Paging and ordering for list endpoints, with ACR's `Link` header (docs/acr-facts.md 1.11-1.12).

`n` defaults to 100 and is capped at 1000. Without `orderby`, `last` is the last name (or
digest) of the previous page and results are lexical. With `orderby=timeasc|timedesc`, the
`last` we put in the Link is an opaque continuation (`<microseconds>~<name>`) that stays valid
even if that item is deleted between pages; a plain name from the current listing is also
accepted as `last` (acr-cli resends the name it saw).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from acr_emulator.errors import invalid
from acr_emulator.http import Request

DEFAULT_PAGE = 100
MAX_PAGE = 1000
ORDERS = ("", "none", "timeasc", "timedesc")

T = TypeVar("T")


def page_size(req: Request) -> int:
    raw = req.arg("n")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n <= 0:
        raise invalid(
            "PAGINATION_NUMBER_INVALID", f"n must be a positive integer, not {raw!r}", {"n": raw}
        )
    return min(n, MAX_PAGE)


def order_of(req: Request) -> str:
    order = (req.arg("orderby") or "").lower()
    if order not in ORDERS:
        raise invalid("BAD_REQUEST", f"orderby must be timedesc, timeasc or none, not {order!r}")
    return "" if order == "none" else order


def continuation(
    order: str, last: str | None, lookup: Callable[[str], Any]
) -> tuple[Any, ...] | None:
    """The sort key after which the next page starts."""
    if last is None or last == "":
        return None
    if not order:
        return (last,)
    item: tuple[Any, ...] | None = lookup(last)
    if item is not None:
        return item
    head, sep, name = last.partition("~")
    try:
        return (int(head), name) if sep else None
    except ValueError:
        pass
    raise invalid(
        "BAD_REQUEST",
        f"last={last!r} is neither an item of this listing nor a continuation from a Link header",
    )


def collect(
    keys: list[tuple[Any, ...]],
    after: tuple[Any, ...] | None,
    n: int,
    fetch: Callable[[tuple[Any, ...]], T | None],
) -> tuple[list[T], tuple[Any, ...] | None]:
    """Up to `n` visible items after `after`, and the key to continue from (None: no more)."""
    items: list[T] = []
    last_key: tuple[Any, ...] | None = None
    start = 0 if after is None else bisect.bisect_right(keys, after)
    for index in range(start, len(keys)):
        value = fetch(keys[index])
        if value is None:
            continue
        if len(items) == n:
            return items, last_key
        items.append(value)
        last_key = keys[index]
    return items, None


def encode_last(order: str, key: tuple[Any, ...]) -> str:
    return key[0] if not order else f"{key[0]}~{key[1]}"


def link_header(path: str, params: Sequence[tuple[str, str]]) -> tuple[str, str]:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    return ("link", f'<{path}?{query}>; rel="next"')
