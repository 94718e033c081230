"""Starts a generation, waits, then reads it to its end: the stream another session probes."""

from kernel.runtime import Runtime

USER = {"role": "user", "content": "hi", "toolCalls": [], "toolCallId": ""}


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    model = rt.cap("model", "LanguageModel")
    stream = model.generate(messages=[USER], tools=[], params={})["stream"]
    console.writeLine(text=f"owner: stream {stream}")
    rt.cap("timer", "Timer").sleep(ns=600_000_000)  # while the snoop tries it
    text, end = "", None
    while end is None:
        for event in model.next(stream=stream)["events"]:
            text += event.get("textDelta", "")
            end = event.get("done") or event.get("error") or end
    console.writeLine(text=f"owner: {text!r} then {end}")
    return 0
