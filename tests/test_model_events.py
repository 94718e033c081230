"""The events a host feeds the LanguageModel cap: what a tab's page relays is checked."""

from __future__ import annotations

from kernel.codec import Bundle, encode
from kernel.services.model import is_completion_event

BUNDLE = Bundle.default()


GOOD_EVENTS = [
    {"textDelta": "hi"},
    {"toolCall": {"id": "call_1", "name": "counter.get", "argumentsJson": "{}"}},
    {"usage": {"promptTokens": 3, "completionTokens": 2**32 - 1}},
    {"done": "stop"},
    {"error": "the endpoint failed"},
]
BAD_EVENTS = [
    {},
    [],
    "done",
    {"done": "stop", "error": "both"},
    {"speak": "hi"},
    {"textDelta": 5},
    {"done": None},
    {"toolCall": {"id": "c", "name": "n"}},
    {"toolCall": {"id": "c", "name": "n", "argumentsJson": {}}},
    {"usage": {"promptTokens": -1, "completionTokens": 0}},
    {"usage": {"promptTokens": 2**32, "completionTokens": 0}},
    {"usage": {"promptTokens": True, "completionTokens": 0}},
]


def test_the_events_a_host_may_feed_are_exactly_those_the_cap_can_hand_out():
    """A tab's events come from the network: the model cap checks each before keeping it."""
    results = BUNDLE.interface("LanguageModel").method("next").results
    assert encode(results, {"events": GOOD_EVENTS})
    assert all(is_completion_event(e) for e in GOOD_EVENTS)
    assert not any(is_completion_event(e) for e in BAD_EVENTS)
