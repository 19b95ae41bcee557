"""Small helpers for the run's concurrent tasks."""

from __future__ import annotations


def first_failure(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception inside a (nested) exception group: what a `TaskGroup` that failed
    should raise to its caller, who handles single errors, not groups."""
    first: BaseException = failures
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
