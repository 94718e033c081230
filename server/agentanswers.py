"""What each agent operation answers, as models: the REST API's response models and the
MCP tools' output schemas, so both describe the same answers (server/agents.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SessionAnswer(BaseModel):
    id: str = Field(description="the session's id: a secret credential, never to be shown")
    owner: str = Field(description="the owner token every later call carries (a secret too)")
    backend: str
    state: str
    created: float = Field(description="when it was made, Unix seconds")
    output_offset: int = Field(description="where its terminal output ends now")
    watch: str | None = Field(None, description="a read-only view link's path, for a person")
    watch_expires_at: float | None = None
    watch_error: str | None = Field(None, description="why there is no view link")


class ForkCost(BaseModel):
    source_pause_ms: float = Field(description="how long the source was stopped for the copy")
    copied_bytes: int = Field(description="the RAM the source had written, copied to the fork")


class ForkAnswer(SessionAnswer):
    fork: ForkCost


class EndAnswer(BaseModel):
    id: str
    ended: bool


class HeldCap(BaseModel):
    name: str
    interface: str
    origin: str = Field(description='"bundle", "let" (bound by a call) or "alias"')


class CapsAnswer(BaseModel):
    caps: list[HeldCap]


class MethodDescription(BaseModel):
    name: str
    description: str
    params: dict[str, Any] = Field(description="JSON Schema of the params")
    results: dict[str, Any] = Field(description="JSON Schema of the results")


class CapDescription(BaseModel):
    name: str
    interface: str
    methods: list[MethodDescription]


class CallAnswer(BaseModel):
    results: dict[str, Any] = Field(description='caps in them are {"$cap": name or null}')
    note: str | None = None


class SpawnAnswer(BaseModel):
    job: int
    pid: int
    binary: str
    kept: list[str] = Field(description="clients of what the child serves, now held")
    exit_code: int | None = Field(None, description="with `wait`: how the child exited")
    exit: str | None = Field(None, description='with `wait`: "exit N", "killed (...)"')


class GenerateAnswer(BaseModel):
    text: str = Field(description="what the model answered")
    stop: str = Field(description='why it stopped: "stop", "length", "tool_calls"')
    usage: dict[str, int] = Field(description="promptTokens and completionTokens")


class InputAnswer(BaseModel):
    written: int
    output_offset: int


class OutputAnswer(BaseModel):
    offset: int
    data: str
    next_offset: int
    reset: bool = Field(description="the bytes asked for fell out of the scrollback")
    ended: str | None = Field(description="why the session ended, once it has")


class MonitorAnswer(BaseModel):
    """A MonitorSnapshot (schema/capos.capnp) as JSON, through the shell's monitor cap."""

    scopePid: int = Field(description="0: the whole system; else the subtree rooted there")
    processes: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    exits: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    tracing: bool
