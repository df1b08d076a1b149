import re
from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.states import (
    BATCH,
    FINAL_ITEM_STATUSES,
    INVOICE,
    ITEM,
    BatchStatus,
    IllegalTransition,
    InvoiceStatus,
    ItemStatus,
    StateMachine,
)

MACHINES = [INVOICE, BATCH, ITEM]


@pytest.mark.parametrize(
    ("machine", "terminal"),
    [
        (INVOICE, {"submitted", "dead", "needs_reconciliation", "abandoned"}),
        (BATCH, {"completed", "denied", "canceled", "dead", "needs_reconciliation"}),
        (ITEM, {"FAILED", "RETURNED", "BLOCKED", "REFUNDED", "REVERSED"}),
    ],
)
def test_terminal_states(machine, terminal):
    assert machine.terminal == terminal


@pytest.mark.parametrize(
    ("machine", "statuses"),
    [(INVOICE, InvoiceStatus), (BATCH, BatchStatus), (ITEM, ItemStatus)],
)
def test_machine_knows_every_status(machine, statuses):
    assert machine.states == {s.value for s in statuses}


def test_final_item_statuses_are_terminal_plus_success():
    # SUCCESS stops polling but can still become REFUNDED or REVERSED.
    assert ITEM.terminal | {"SUCCESS"} == FINAL_ITEM_STATUSES
    assert ITEM.automatic["SUCCESS"] == {"REFUNDED", "REVERSED"}


@pytest.mark.parametrize(
    ("machine", "src", "dst", "admin", "allowed"),
    [
        (INVOICE, "pending", "processing", False, True),
        (INVOICE, "processing", "needs_reconciliation", False, True),
        (INVOICE, "pending", "submitted", False, False),
        (INVOICE, "dead", "pending", False, False),
        (INVOICE, "dead", "pending", True, True),
        (INVOICE, "needs_reconciliation", "submitted", True, True),
        (INVOICE, "abandoned", "pending", True, False),
        (INVOICE, "pending", "processing", True, True),
        (BATCH, "submitted", "canceled", False, True),
        (BATCH, "pending", "dead", False, True),
        (BATCH, "pending", "dead", True, True),
        (BATCH, "completed", "pending", True, False),
        # A batch PayPal may have created is held, never dead; only an operator moves it on.
        (BATCH, "processing", "needs_reconciliation", False, True),
        (BATCH, "needs_reconciliation", "pending", False, False),
        (BATCH, "needs_reconciliation", "pending", True, True),
        (BATCH, "needs_reconciliation", "canceled", True, True),
        (BATCH, "needs_reconciliation", "dead", True, False),
        (ITEM, "queued", "SUCCESS", False, True),
        (ITEM, "FAILED", "SUCCESS", True, False),
    ],
)
def test_can(machine, src, dst, admin, allowed):
    assert machine.can(src, dst, admin=admin) is allowed


@pytest.mark.parametrize(
    ("machine", "src", "dst", "admin", "message"),
    [
        (
            INVOICE,
            "pending",
            "submitted",
            False,
            "invoice: pending -> submitted is not an automatic transition; "
            "from pending allowed: dead, processing",
        ),
        (
            INVOICE,
            "submitted",
            "pending",
            False,
            "invoice: submitted -> pending is not an automatic transition; "
            "from submitted none is allowed",
        ),
        (
            INVOICE,
            "dead",
            "submitted",
            True,
            "invoice: dead -> submitted is not an admin override; "
            "from dead allowed: abandoned, pending",
        ),
        (
            BATCH,
            "processing",
            "canceled",
            False,
            "payout batch: processing -> canceled is not an automatic transition; "
            "from processing allowed: completed, dead, denied, needs_reconciliation, pending, "
            "submitted",
        ),
        (
            BATCH,
            "completed",
            "pending",
            True,
            "payout batch: completed -> pending is not an admin override; "
            "from completed none is allowed",
        ),
    ],
)
def test_illegal_transition_names_allowed_targets(machine, src, dst, admin, message):
    with pytest.raises(IllegalTransition, match=re.escape(message) + "$"):
        machine.require(src, dst, admin=admin)


@pytest.mark.parametrize("machine", MACHINES)
def test_admin_refusal_names_every_target_require_would_accept(machine):
    # With admin=True, `can` also accepts the automatic edges, so the refusal must name them too.
    for src in sorted(machine.states - machine.terminal):
        accepted = {dst for dst in machine.states if machine.can(src, dst, admin=True)}
        rejected = next(dst for dst in sorted(machine.states) if dst not in accepted)
        with pytest.raises(IllegalTransition) as refusal:
            machine.require(src, rejected, admin=True)
        assert f"allowed: {', '.join(sorted(accepted))}" in str(refusal.value)


@pytest.mark.parametrize(("src", "dst"), [("pending", "shipped"), ("lost", "pending")])
def test_unknown_status_is_a_clear_error(src, dst):
    bad = dst if src == "pending" else src
    known = "abandoned, dead, needs_reconciliation, pending, processing, submitted"
    message = f"invoice: unknown status {bad!r}; known: {known}"
    with pytest.raises(IllegalTransition, match=re.escape(message)):
        INVOICE.require(src, dst)
    assert not INVOICE.can(src, dst, admin=True)


def test_illegal_transition_is_a_value_error():
    assert issubclass(IllegalTransition, ValueError)


def test_build_rejects_edges_to_unknown_states():
    class Light(StrEnum):
        RED = "red"
        GREEN = "green"

    class Other(StrEnum):
        BLUE = "blue"

    with pytest.raises(
        ValueError, match=re.escape("light: transitions name unknown states ['blue']")
    ):
        StateMachine.build("light", Light, {Light.RED: {Other.BLUE}}, {})


def test_item_machine_has_no_admin_edges():
    assert dict(ITEM.admin) == {}
    for src in ITEM.states:
        for dst in ITEM.states:
            assert ITEM.can(src, dst, admin=True) == ITEM.can(src, dst)


@settings(deadline=None, database=None)
@given(st.data())
def test_random_walks_leave_terminal_states_only_by_admin_edges(data):
    machine = data.draw(st.sampled_from(MACHINES))
    states = sorted(machine.states)
    state = data.draw(st.sampled_from(states))
    steps = data.draw(
        st.lists(st.tuples(st.sampled_from(states), st.booleans()), min_size=1, max_size=30)
    )
    for dst, admin in steps:
        allowed = machine.can(state, dst, admin=admin)
        if allowed:
            machine.require(state, dst, admin=admin)
        else:
            with pytest.raises(IllegalTransition):
                machine.require(state, dst, admin=admin)
            continue
        if state in machine.terminal:
            assert admin
            assert dst in machine.admin[state]
        else:
            assert dst in machine.automatic[state] or (admin and dst in machine.admin[state])
        state = dst
