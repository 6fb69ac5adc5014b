"""Executors decide where units run. Built in: ``local``, in this process, one unit after another."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from harness.api.specs import ExecutorSpec
from harness.plugins.hookspecs import hookimpl

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class LocalExecutor:
    """Runs units in order in the calling process; a unit's exception is the caller's ``fn`` to handle."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    register(ExecutorSpec(name="local", target="harness.executors:LocalExecutor",
                          description="in this process, one unit after another"))
