"""`capos-playground bench agent`: the built-in local model proposing tool calls.

Boots the model service natively with the local model attached and times,
from a capOS process, how long the model takes to propose one constrained
tool call, and how many of the calls it proposes are schema-valid (the
grammar should make that all of them). `mcp_call_ms` comes with the MCP API.
"""

from __future__ import annotations

import json
import sys

from bench.figures import report
from bench.kernel import _kernel_caps, _manifest, _run_system
from kernel.hosts.models.local import MODEL_ID, LocalModel

TARGETS = {"local_valid_pct": (">=", 100.0)}
LABELS = {
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
    return json.loads(_run_system(image, timeout=600, model=LocalModel()))


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    print(f"measuring {MODEL_ID} tool calls through the model service ...", file=sys.stderr)
    figures = measure_local(rounds=1 if quick else 2)
    print(f"\n{MODEL_ID}, llama.cpp, 1 thread:")
    return report(figures, TARGETS, json_path, labels=LABELS, model=MODEL_ID, quick=quick)
