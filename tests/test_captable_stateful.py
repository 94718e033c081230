"""CapTable under a model: generation-tagged slots, moves, and the cap_slots ledger."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kernel import abi
from kernel.abi import Err
from kernel.capobject import CapObject
from kernel.captable import CapEntry, CapTable, Origin, TransferPolicy
from kernel.errors import TransportError
from kernel.ledger import QuotaExceeded, Resource, ResourceLedger

LIMIT = 6


class _Inert(CapObject):
    """A kernel object no test calls: the cap table only stores it."""

    def invoke(self, ctx):  # pragma: no cover - never called
        raise AssertionError("not callable")


def new_entry(interface_id: int = 7) -> CapEntry:
    return CapEntry(_Inert(), interface_id, TransferPolicy.COPY, Origin.KERNEL)


def make_table(limit: int = LIMIT) -> tuple[CapTable, ResourceLedger]:
    ledger = ResourceLedger()
    ledger.limits[Resource.CAP_SLOTS] = limit
    return CapTable(ledger), ledger


def error_code(fn, *args) -> Err | None:
    try:
        fn(*args)
    except TransportError as exc:
        return exc.code
    return None


class CapTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table, self.ledger = make_table()
        self.live: dict[int, CapEntry] = {}  # cap_id -> entry, including reserved ones
        self.reserved: set[int] = set()
        self.dead: set[int] = set()  # ids that were issued and then freed
        self.issued: dict[int, list[int]] = {}  # slot -> generations issued, in order
        self.current: dict[int, int] = {}  # slot -> its generation now (issued or next)

    # --- rules ------------------------------------------------------------------------

    @rule(interface_id=st.integers(0, 2**64 - 1))
    def insert(self, interface_id: int):
        entry = new_entry(interface_id)
        if len(self.live) >= LIMIT:
            before = (list(self.table), len(self.table), dict(self.ledger.used))
            with pytest.raises(QuotaExceeded):
                self.table.insert(entry)
            assert (list(self.table), len(self.table), dict(self.ledger.used)) == before
            return
        cap_id = self.table.insert(entry)
        assert cap_id not in self.live
        slot, generation = abi.cap_slot(cap_id), abi.cap_generation(cap_id)
        assert generation != 0
        history = self.issued.setdefault(slot, [])
        if history:
            assert generation == history[-1] + 1  # never repeats, never skips (before a wrap)
        history.append(generation)
        self.current[slot] = generation
        self.live[cap_id] = entry
        self.dead.discard(cap_id)

    def _live_unreserved(self) -> list[int]:
        return [c for c in self.live if c not in self.reserved]

    @precondition(lambda self: self._live_unreserved())
    @rule(data=st.data())
    def remove(self, data):
        cap_id = data.draw(st.sampled_from(self._live_unreserved()))
        assert self.table.remove(cap_id) is self.live.pop(cap_id)
        self._freed(cap_id)

    def _freed(self, cap_id: int) -> None:
        self.dead.add(cap_id)
        slot = abi.cap_slot(cap_id)
        self.current[slot] = (self.current[slot] + 1) & abi.CAP_GENERATION_MASK or 1

    @precondition(lambda self: self.dead)
    @rule(data=st.data())
    def remove_dead_id_is_refused(self, data):
        cap_id = data.draw(st.sampled_from(sorted(self.dead)))
        before = dict(self.ledger.used)
        assert error_code(self.table.remove, cap_id) == Err.INVALID_CAP
        assert dict(self.ledger.used) == before

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def get_current(self, data):
        cap_id = data.draw(st.sampled_from(sorted(self.live)))
        if cap_id in self.reserved:
            assert error_code(self.table.get, cap_id) == Err.INVALID_CAP
        else:
            assert self.table.get(cap_id) is self.live[cap_id]
            entry = self.live[cap_id]
            assert self.table.lookup(cap_id, entry.interface_id) is entry
            other = (entry.interface_id + 1) % 2**64
            assert error_code(self.table.lookup, cap_id, other) == Err.WRONG_INTERFACE

    @precondition(lambda self: self.dead)
    @rule(data=st.data())
    def get_stale(self, data):
        cap_id = data.draw(st.sampled_from(sorted(self.dead)))
        assert error_code(self.table.get, cap_id) == Err.STALE_CAP

    @rule(cap_id=st.integers(0, 2**32 - 1))
    def get_arbitrary(self, cap_id):
        code = error_code(self.table.get, cap_id)
        slot, generation = abi.cap_slot(cap_id), abi.cap_generation(cap_id)
        if slot not in self.current:
            assert code == Err.INVALID_CAP  # a slot never used
        elif generation != self.current[slot]:
            assert code == Err.STALE_CAP
        elif cap_id in self.live and cap_id not in self.reserved:
            assert code is None
        else:
            assert code == Err.INVALID_CAP  # freed-and-never-reissued or being moved

    @precondition(lambda self: self._live_unreserved())
    @rule(data=st.data())
    def reserve_move(self, data):
        cap_id = data.draw(st.sampled_from(self._live_unreserved()))
        assert self.table.reserve_move(cap_id) is self.live[cap_id]
        self.reserved.add(cap_id)
        # a reserved cap cannot be reserved (moved) again
        assert error_code(self.table.reserve_move, cap_id) == Err.INVALID_CAP

    @precondition(lambda self: self.reserved)
    @rule(data=st.data())
    def commit_move(self, data):
        cap_id = data.draw(st.sampled_from(sorted(self.reserved)))
        self.table.commit_move(cap_id)
        self.reserved.discard(cap_id)
        del self.live[cap_id]
        self._freed(cap_id)

    @precondition(lambda self: self.reserved)
    @rule(data=st.data())
    def rollback_move(self, data):
        cap_id = data.draw(st.sampled_from(sorted(self.reserved)))
        self.table.rollback_move(cap_id)
        self.reserved.discard(cap_id)
        assert self.table.get(cap_id) is self.live[cap_id]

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def table_matches_model(self):
        listed = dict(self.table)
        assert listed.keys() == self.live.keys()
        for cap_id, entry in listed.items():
            assert entry is self.live[cap_id]
            assert entry.reserved == (cap_id in self.reserved)
        assert len(self.table) == len(self.live)

    @invariant()
    def ledger_counts_live_and_reserved_slots(self):
        assert self.ledger.used[Resource.CAP_SLOTS] == len(self.live)
        assert 0 <= self.ledger.used[Resource.CAP_SLOTS] <= LIMIT
        for resource in (Resource.OUTSTANDING_CALLS, Resource.BUFFER_BYTES, Resource.PROCESSES):
            assert self.ledger.used[resource] == 0


CapTableMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestCapTableStateful = CapTableMachine.TestCase


# --- named behaviour --------------------------------------------------------------------------


def test_released_cap_id_goes_stale_when_slot_is_reused() -> None:
    table, _ = make_table()
    old = table.insert(new_entry())
    table.remove(old)
    new = table.insert(new_entry())
    assert abi.cap_slot(new) == abi.cap_slot(old)
    assert abi.cap_generation(new) == abi.cap_generation(old) + 1
    assert error_code(table.get, old) == Err.STALE_CAP
    assert error_code(table.remove, old) == Err.INVALID_CAP
    assert table.get(new) is not None


def test_released_cap_id_is_stale_while_its_slot_is_empty() -> None:
    table, ledger = make_table()
    cap_id = table.insert(new_entry())
    table.remove(cap_id)
    assert error_code(table.get, cap_id) == Err.STALE_CAP
    assert ledger.used[Resource.CAP_SLOTS] == 0
    assert len(table) == 0


def test_first_cap_id_is_slot_zero_generation_one_and_zero_is_never_valid() -> None:
    table, _ = make_table()
    assert error_code(table.get, 0) == Err.INVALID_CAP  # no slots at all yet
    cap_id = table.insert(new_entry())
    assert cap_id == abi.make_cap_id(0, 1)
    assert error_code(table.get, 0) == Err.STALE_CAP


def test_out_of_range_slot_is_invalid_cap() -> None:
    table, _ = make_table()
    table.insert(new_entry())
    for cap_id in (abi.make_cap_id(1, 1), abi.make_cap_id(0xFFFF, 1), 0xFFFFFFFF):
        assert error_code(table.get, cap_id) == Err.INVALID_CAP


def test_lookup_checks_the_claimed_interface() -> None:
    table, _ = make_table()
    cap_id = table.insert(new_entry(interface_id=42))
    assert table.lookup(cap_id, 42).interface_id == 42
    assert error_code(table.lookup, cap_id, 43) == Err.WRONG_INTERFACE


def test_generation_wraps_past_0xffff_skipping_zero() -> None:
    table, _ = make_table()
    seen = []
    for _ in range(abi.CAP_GENERATION_MASK + 1):
        cap_id = table.insert(new_entry())
        assert abi.cap_slot(cap_id) == 0
        seen.append(abi.cap_generation(cap_id))
        table.remove(cap_id)
    assert seen[:2] == [1, 2]
    assert seen[0xFFFE] == 0xFFFF
    assert seen[0xFFFF] == 1  # wrapped, and 0 was skipped
    assert 0 not in seen
    assert len(set(seen[:0xFFFF])) == 0xFFFF


def test_reserved_cap_cannot_be_used_or_reserved_again_until_rolled_back() -> None:
    table, ledger = make_table()
    cap_id = table.insert(new_entry())
    table.reserve_move(cap_id)
    assert error_code(table.get, cap_id) == Err.INVALID_CAP
    assert error_code(table.reserve_move, cap_id) == Err.INVALID_CAP
    assert ledger.used[Resource.CAP_SLOTS] == 1  # still charged while in transit
    assert len(table) == 1
    table.rollback_move(cap_id)
    assert table.get(cap_id).reserved is False  # the same id works again


def test_commit_move_frees_the_slot_and_its_quota() -> None:
    table, ledger = make_table()
    cap_id = table.insert(new_entry())
    table.reserve_move(cap_id)
    table.commit_move(cap_id)
    assert len(table) == 0
    assert ledger.used[Resource.CAP_SLOTS] == 0
    assert error_code(table.get, cap_id) == Err.STALE_CAP


def test_insert_past_quota_raises_without_changing_state() -> None:
    table, ledger = make_table(limit=2)
    ids = [table.insert(new_entry()), table.insert(new_entry())]
    with pytest.raises(QuotaExceeded) as info:
        table.insert(new_entry())
    assert info.value.resource is Resource.CAP_SLOTS
    assert ledger.used[Resource.CAP_SLOTS] == 2
    assert [c for c, _ in table] == ids
    table.remove(ids[0])
    assert abi.cap_slot(table.insert(new_entry())) == abi.cap_slot(ids[0])


def test_prereserved_insert_is_not_charged_twice() -> None:
    table, ledger = make_table(limit=1)
    ledger.reserve(Resource.CAP_SLOTS)
    table.insert(new_entry(), prereserved=True)
    assert ledger.used[Resource.CAP_SLOTS] == 1
    assert len(table) == 1


def test_clear_releases_every_slot_including_reserved() -> None:
    table, ledger = make_table()
    a = table.insert(new_entry())
    b = table.insert(new_entry())
    table.reserve_move(b)
    held = table.clear()
    assert len(held) == 2
    assert len(table) == 0
    assert ledger.used[Resource.CAP_SLOTS] == 0
    assert error_code(table.get, a) is not None


def test_cap_ids_held_before_clear_never_name_caps_inserted_after() -> None:
    """clear() frees slots; like remove() it must retire their generations, or an
    id kept from before names whatever lands in its slot next."""
    table, _ = make_table()
    old = table.insert(new_entry())
    table.clear()
    new_entry_ = new_entry()
    new = table.insert(new_entry_)
    assert new != old
    assert error_code(table.get, old) == Err.STALE_CAP
