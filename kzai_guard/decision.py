"""The ``@guard.decision(name)`` decorator, for sync and async functions alike.

A call the verdict lets through ends in one record: the decision (or its withholding) when
the function returns, ``decision.failed`` when it raises, and then the exception reaches the
caller unchanged. With ``durability="sync"`` the call returns once that record is durable, or
raises :class:`~kzai_guard.errors.AuditUnavailable` (503 ``audit-unavailable``) after
:data:`~kzai_guard.gate.DURABLE_WAIT_S` seconds: a silent log never holds a response for
longer.

The wrapper keeps the wrapped function's signature (``functools.wraps``), so FastAPI still sees
the real endpoint: its dependency injection, validation and OpenAPI stay intact.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import anyio.to_thread

from kzai_guard.context import _current
from kzai_guard.core.verdict import Outcome, Reason
from kzai_guard.gate import Gate

__all__ = ["guard_function"]

P = ParamSpec("P")
ALLOW = Outcome.ALLOW
SUSPENDED = Reason.SUSPENDED
# the context variable's own getter, bound once: no Python call around it per decision
current_context = _current.get
R = TypeVar("R")


def guard_function(gate: Gate, fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so that every call is a decision under ``gate``'s policy."""
    begin, finish, failed, sink = gate.begin, gate.finish, gate.failed, gate.sink
    enforce, fail_closed = gate.enforce, gate.fail_closed
    if inspect.iscoroutinefunction(fn):
        async_fn = cast(Callable[P, Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def async_decision(*args: P.args, **kwargs: P.kwargs) -> Any:
            decision = begin(current_context())
            if decision.verdict.outcome is not ALLOW and (
                enforce or decision.verdict.reason is SUSPENDED
            ):
                if decision.verdict.outcome is Outcome.ROUTE:
                    await anyio.to_thread.run_sync(gate.refuse, decision)
                gate.refuse(decision)
            if fail_closed and not sink.healthy:
                gate.audit_unavailable(decision)
            try:
                result = await async_fn(*args, **kwargs)
            except BaseException as error:
                failed(decision, error)
                raise
            durable = finish(decision)
            if durable is not None:
                try:
                    # shielded: the record's future belongs to the writer, not to this wait
                    await asyncio.wait_for(
                        asyncio.shield(asyncio.wrap_future(durable)), gate.durable_wait
                    )
                except TimeoutError:
                    gate.not_durable(decision, durable)
            return result

        return cast(Callable[P, R], async_decision)

    @functools.wraps(fn)
    def sync_decision(*args: P.args, **kwargs: P.kwargs) -> R:
        decision = begin(current_context())
        if decision.verdict.outcome is not ALLOW and (
            enforce or decision.verdict.reason is SUSPENDED
        ):
            gate.refuse(decision)
        if fail_closed and not sink.healthy:
            gate.audit_unavailable(decision)
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            failed(decision, error)
            raise
        durable = finish(decision)
        if durable is not None:
            try:
                durable.result(gate.durable_wait)
            except TimeoutError:
                gate.not_durable(decision, durable)
        return result

    return sync_decision
