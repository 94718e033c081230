"""From another session, tries to read or cancel streams it did not start, and to
hold the model for a million tokens."""

from kernel.runtime import RemoteError, Runtime


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    model = rt.cap("model", "LanguageModel")
    rt.cap("timer", "Timer").sleep(ns=200_000_000)  # the owner's stream is open by now
    refused = 0
    for stream in range(1, 5):
        for method in (model.next, model.cancel):
            try:
                method(stream=stream)
            except RemoteError as exc:
                refused += exc.type == "invalidArgument"
    user = {"role": "user", "content": "go on forever", "toolCalls": [], "toolCallId": ""}
    try:
        model.generate(messages=[user], tools=[], params={"maxTokens": 1_000_000})
    except RemoteError as exc:
        refused += exc.type == "invalidArgument"
    console.writeLine(text=f"snoop: refused {refused} of 9")
    return 0
