"""Long tool calls as Tasks: the MCP extension `io.modelcontextprotocol/tasks` (2026-07-28).

A client that declares the extension on a tools/call gets its answer at once
when the call is quick; one still running after TASK_AFTER_S (create_session
while the pool boots a VM, a spawn waiting for its program to exit, a model
generation, a terminal_read waiting for output, any slow call) is answered
with a task instead of a request held open for up to a minute.
The client polls tasks/get, which carries the tool's result once the task
completes, or ends it with tasks/cancel. The work runs in the server's task
group, so it ends with the server. A task id is a 128-bit secret: whoever
holds it may poll or cancel. Finished tasks are kept TTL_MS, and one client
(an address) has at most MAX_RUNNING_PER_CLIENT running; past that, or for a
client without the extension, a call is answered the plain way.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolRequestParams
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel
from starlette.requests import Request

from server.admission import client_of

EXTENSION_ID = "io.modelcontextprotocol/tasks"
TASK_AFTER_S = 1.0  # a call still running then becomes a task
POLL_INTERVAL_MS = 1000
TTL_MS = 10 * 60 * 1000  # how long a finished task is kept
MAX_RUNNING_PER_CLIENT = 8
MAX_TASKS = 1000  # kept at once, running or finished


class TaskParams(RequestParams):
    taskId: str


class UpdateTaskParams(TaskParams):
    inputResponses: dict[str, Any] = {}


@dataclass
class _Outcome:
    """How the work ended: the tool's result, or the exception it raised."""

    result: HandlerResult | None = None
    error: Exception | None = None


@dataclass
class Task:
    id: str
    client: str
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    status: str = "working"  # working, completed, failed, cancelled
    answer: dict[str, Any] | None = None  # the result (completed) or the error (failed)
    job: asyncio.Task[_Outcome] | None = None

    def finish(self, job: asyncio.Task[_Outcome]) -> None:
        self.updated = time.time()
        if job.cancelled():
            self.status = "cancelled"
            return
        outcome = job.result()
        if outcome.error is None:
            self.status, self.answer = "completed", _dumped(outcome.result)
        elif isinstance(outcome.error, MCPError):
            self.status, self.answer = "failed", _dumped(outcome.error.error)
        else:  # the SDK would answer a crash with INTERNAL_ERROR too, saying no more
            self.status = "failed"
            self.answer = {"code": INTERNAL_ERROR, "message": "the tool failed (a server bug)"}

    def detailed(self) -> dict[str, Any]:
        """The task as tasks/get shows it: with its result or error once it has one."""
        task: dict[str, Any] = {
            "taskId": self.id,
            "status": self.status,
            "createdAt": _iso(self.created),
            "lastUpdatedAt": _iso(self.updated),
            "ttlMs": TTL_MS,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if self.status == "completed":
            task["result"] = self.answer
        elif self.status == "failed":
            task["error"] = self.answer
        return task

    def expired(self, now: float) -> bool:
        return self.status != "working" and now - self.updated > TTL_MS / 1000


class ToolTasks(Extension):
    """The Tasks extension for tools/call; run `running()` for the server's lifetime."""

    identifier = EXTENSION_ID

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._group: asyncio.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Tasks' work runs in this block; what is still running at its end is cancelled."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                for task in self._tasks.values():
                    if task.job is not None:
                        task.job.cancel()

    def methods(self) -> Sequence[MethodBinding]:
        versions = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskParams, self._get, versions),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, versions),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, versions),
        ]

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        client = _client(ctx)
        if self._group is None or not _declared(ctx) or not self._room_for(client):
            return await call_next(ctx)
        job = self._group.create_task(_work(call_next, ctx))
        await asyncio.wait({job}, timeout=TASK_AFTER_S)
        if job.done():
            outcome = job.result()
            if outcome.error is not None:
                raise outcome.error
            return outcome.result
        task = Task(secrets.token_hex(16), client, job=job)
        self._tasks[task.id] = task
        job.add_done_callback(task.finish)
        return {
            "resultType": "task",
            "statusMessage": f"{params.name} is still running: poll tasks/get",
            **task.detailed(),
        }

    def _room_for(self, client: str) -> bool:
        now = time.time()
        for task_id in [t.id for t in self._tasks.values() if t.expired(now)]:
            del self._tasks[task_id]
        running = sum(t.client == client and t.status == "working" for t in self._tasks.values())
        return running < MAX_RUNNING_PER_CLIENT and len(self._tasks) < MAX_TASKS

    def _task(self, params: TaskParams) -> Task:
        task = self._tasks.get(params.taskId)
        if task is None or task.expired(time.time()):
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"no task {params.taskId[:40]!r}: it never existed, or finished "
                f"more than {TTL_MS // 60000} minutes ago",
            )
        return task

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict:
        return self._task(params).detailed()

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict:
        self._task(params)  # no tool here asks for input: there is nothing to answer
        return {}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict:
        task = self._task(params)
        if task.job is not None:
            task.job.cancel()
        return {}


async def _work(call_next: CallNext, ctx: ServerRequestContext[Any, Any]) -> _Outcome:
    """The call, its failure kept as its outcome: one failing call must not end the
    task group, and with it every other task."""
    try:
        return _Outcome(result=await call_next(ctx))
    except Exception as exc:
        return _Outcome(error=exc)


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The client named the extension on this very request (the spec's per-request rule)."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return extensions is not None and EXTENSION_ID in extensions


def _client(ctx: ServerRequestContext[Any, Any]) -> str:
    return client_of(ctx.request) if isinstance(ctx.request, Request) else "unknown"


def _dumped(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dict(value) if value is not None else {}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
