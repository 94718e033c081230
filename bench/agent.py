"""`capos-playground bench agent`: the built-in local model proposing tool calls.

Boots the model service natively with the local model attached and times,
from a capOS process, how long the model takes to propose one constrained
tool call, and how many of the calls it proposes are schema-valid (the
grammar should make that all of them). Then it starts the real server with a
QEMU pool and times `call_method` through MCP over HTTP on a native session,
with the same call through the REST API as its peer: the difference is what
MCP costs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from bench.figures import report
from bench.kernel import _kernel_caps, _manifest, _run_system
from bench.poolserver import pool_server
from kernel.hosts.models.local import MODEL_ID, LocalModel

TARGETS = {"mcp_call_ms": ("<=", 20.0), "local_valid_pct": (">=", 100.0)}
LABELS = {
    "mcp_call_ms": "call_method (echo.echo) through MCP over HTTP on a QEMU session, median ms",
    "mcp_call_p99_ms": "the same, 99th percentile",
    "rest_call_ms": "peer: the same call through the REST API, median ms",
    "mcp_calls": "calls timed",
    "local_tool_call_ms": "local model: request to proposed tool call, median ms",
    "local_valid_pct": "proposed calls that are schema-valid, %",
    "local_right_tool_pct": "proposed calls naming the expected tool, %",
    "local_calls": "tool calls proposed",
    "local_plain_answers": "requests answered in text instead",
    "local_tools_offered": "tools offered each time",
}


def measure_local(rounds: int) -> dict:
    image = _manifest(
        rounds,
        [
            {
                "name": "model",
                "binary": "model-service",
                "exports": [{"name": "model", "interface": "LanguageModel"}],
                "caps": [{"name": "device", "source": {"kernel": "languageModel"}}],
            },
            {
                "name": "probe",
                "binary": "probe",
                "caps": _kernel_caps("console", "info")
                + [
                    {"name": "model", "source": {"import": {"service": "model", "export": "model"}}}
                ],
            },
        ],
        {"model-service": "kernel.programs.model_service", "probe": "bench.programs.agent_probe"},
    )
    return json.loads(_run_system(image, timeout=600, model=LocalModel()).line)


def measure_mcp(calls: int) -> dict:
    from mcp import Client

    echo = {"cap": "echo", "method": "echo", "arguments": {"data": "ping"}}

    def median_ms(samples: list[float]) -> float:
        return round(statistics.median(samples) * 1000, 2)

    def settled() -> bool:
        pool = server.pool()
        return pool["warm"] >= 1 and pool["booting"] == 0

    async def through_mcp() -> tuple[list[float], str]:
        async with Client(f"{server.base}/mcp") as client:  # the current revision
            created = (await client.call_tool("create_session", {})).structured_content
            held = {"owner": created["owner"], "session": created["id"]}
            # Time the steady state, not the pool restoring a VM to replace the one taken.
            await asyncio.to_thread(server.wait_for, settled, "the pool to refill")
            samples = []
            for index in range(calls + 10):  # the first ten warm the path up
                start = time.perf_counter()
                answer = await client.call_tool("call_method", held | echo)
                if index >= 10:
                    samples.append(time.perf_counter() - start)
                if answer.is_error:
                    raise RuntimeError(f"call_method failed: {answer.structured_content}")
            return samples, held["session"]

    with pool_server("--warm", "1", "--max-vms", "2", "--agent-calls-per-s", "10000") as server:
        server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM")
        mcp_samples, session = asyncio.run(through_mcp())
        rest_samples = []
        for index in range(calls + 10):
            start = time.perf_counter()
            server.http.post(f"/api/sessions/{session}/calls", json=echo).raise_for_status()
            if index >= 10:
                rest_samples.append(time.perf_counter() - start)
    mcp_samples.sort()
    return {
        "mcp_call_ms": median_ms(mcp_samples),
        "mcp_call_p99_ms": round(mcp_samples[int(len(mcp_samples) * 0.99)] * 1000, 2),
        "rest_call_ms": median_ms(rest_samples),
        "mcp_calls": len(mcp_samples),
    }


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    print("measuring call_method through MCP on a QEMU session ...", file=sys.stderr)
    figures = measure_mcp(calls=50 if quick else 300)
    print(f"measuring {MODEL_ID} tool calls through the model service ...", file=sys.stderr)
    figures |= measure_local(rounds=1 if quick else 2)
    print(f"\nMCP on a QEMU session; {MODEL_ID}, llama.cpp, 1 thread:")
    return report(figures, TARGETS, json_path, labels=LABELS, model=MODEL_ID, quick=quick)
