"""Local model tool calls, timed from inside capOS through the model service.

For each request it asks the model (with tools a guest shell would
offer) and reads the stream to its end, as the shell's agent mode does. A
proposed call counts as valid when it names one of the tools and its
arguments pass the same checks the shell runs before executing anything.
"""

from __future__ import annotations

import json
import statistics
import time

from bench.programs.report import bench_params, report
from kernel.programs.shell.tools import descriptor
from kernel.programs.shell.values import InputError, to_params
from kernel.runtime import Runtime

# Plain-data caps of a guest shell's bundle (those the requests use), by their names there.
CAPS = {
    "counter": "Counter",
    "echo": "Echo",
    "manual": "Manual",
    "paperclips": "PaperclipsGame",
    "session": "UserSession",
    "systemInfo": "SystemInfo",
    "timer": "Timer",
}
REQUESTS = [
    ("increment the counter by 3", "counter.increment"),
    ("what is the counter value?", "counter.get"),
    ("what time is it?", "timer.now"),
    ("make 12 paperclips", "paperclips.make"),
    ("sell 5 paperclips", "paperclips.sell"),
    ("set the paperclip price to 7 cents", "paperclips.setPrice"),
    ("buy 2 spools of wire", "paperclips.buyWire"),
    ("what is the hostname?", "systemInfo.hostname"),
    ("show the message of the day", "systemInfo.motd"),
    ("echo the word hello", "echo.echo"),
]


def main(rt: Runtime) -> int:
    rounds = bench_params(rt)["count"]
    model = rt.cap("model", "LanguageModel")
    methods = {}
    for cap_name, interface_name in CAPS.items():
        interface = rt.bundle.interface(interface_name)
        for method in interface.methods:
            methods[f"{cap_name}.{method.name}"] = (interface, method)
    tools = [descriptor(n.split(".")[0], i, m) for n, (i, m) in methods.items()]
    ask(model, tools, "hello")  # warm-up: loads the prompt prefix into llama.cpp's cache
    call_ms, proposed, valid, right, answers = [], 0, 0, 0, 0
    for _ in range(rounds):
        for text, expected in REQUESTS:
            start = time.perf_counter()
            calls = ask(model, tools, text)
            elapsed = (time.perf_counter() - start) * 1000
            if not calls:
                answers += 1
                continue
            call_ms.append(elapsed)
            for call in calls:
                proposed += 1
                right += call["name"] == expected
                valid += is_valid(methods, call)
    report(
        rt,
        {
            "local_tool_call_ms": statistics.median(call_ms) if call_ms else None,
            "local_valid_pct": 100.0 * valid / proposed if proposed else None,
            "local_right_tool_pct": 100.0 * right / proposed if proposed else None,
            "local_calls": proposed,
            "local_plain_answers": answers,
            "local_tools_offered": len(tools),
        },
    )
    return 0


def ask(model, tools: list[dict], text: str) -> list[dict]:
    """One model turn, read to its end; the calls it proposed."""
    message = {"role": "user", "content": text, "toolCalls": [], "toolCallId": ""}
    stream = model.generate(messages=[message], tools=tools, params={"maxTokens": 96})["stream"]
    calls = []
    while True:
        for event in model.next(stream=stream)["events"]:
            if "toolCall" in event:
                calls.append(event["toolCall"])
            if "done" in event or "error" in event:
                return calls


def is_valid(methods: dict, call: dict) -> bool:
    if call["name"] not in methods:
        return False
    try:
        arguments = json.loads(call["argumentsJson"])
        to_params(methods[call["name"]][1].params, arguments, None, call["name"])
    except (ValueError, InputError):
        return False
    return True
