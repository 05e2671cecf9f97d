"""The reservation ledger's rules on their own: release order, periods, lapses, merging a stored state."""

from __future__ import annotations

from airflow_provider_tamtam.models import CreditLine, CreditSummary
from airflow_provider_tamtam.reservations import Gate, Ledger, MemoryStore, ReservationDesk
from airflow_provider_tamtam.reservations.ledger import ordinal
from airflow_provider_tamtam.testing import credit_line

TYPE = "MaxKeyAccountsUnlocked"


def lines(*, used: int, total: int) -> list[CreditLine]:
    return [CreditLine.model_validate(credit_line(TYPE, used=used, total=total))]


def summary(*, used: int, total: int) -> CreditSummary:
    return CreditSummary.of(lines(used=used, total=total), TYPE)


def gate(gate_id: str, needed: int = 500, *, since: float = 0.0, timeout: float = 3600.0) -> Gate:
    return Gate(gate_id, needed, 0, since, timeout)


def test_growth_releases_the_oldest_reservations_first_credit_for_credit() -> None:
    ledger = Ledger()
    for i in range(3):
        ledger.join(gate(f"g{i}", since=i), now=0.0)
    ledger.observe(summary(used=1000, total=3000), now=0.0)
    assert set(ledger.reservations) == {"g0", "g1", "g2"}
    ledger.observe(summary(used=1700, total=3000), now=1.0)  # 700 spent
    assert set(ledger.reservations) == {"g1", "g2"}
    assert ledger.reserved == 300 + 500


def test_a_reservation_made_after_some_spending_is_released_only_after_the_older_ones() -> None:
    ledger = Ledger()
    ledger.join(gate("old"), now=0.0)
    ledger.observe(summary(used=1000, total=2000), now=0.0)
    ledger.join(gate("young", since=1.0), now=0.0)
    ledger.observe(summary(used=1200, total=2000), now=1.0)  # old spent 200; 800 - 300 fits young
    assert set(ledger.reservations) == {"old", "young"}
    ledger.observe(summary(used=1500, total=2000), now=2.0)  # old's 500 are all spent, young's untouched
    assert set(ledger.reservations) == {"young"}
    assert ledger.reserved == 500


def test_a_drop_of_used_credits_is_a_new_period_that_releases_everything() -> None:
    ledger = Ledger()
    ledger.join(gate("a"), now=0.0)
    ledger.join(gate("b", since=1.0), now=0.0)
    ledger.observe(summary(used=1000, total=2000), now=0.0)
    ledger.observe(summary(used=0, total=2000), now=5.0)
    assert set(ledger.reservations) == set()  # and the 2,000 of the new period are free for others


def test_a_reservation_lapses_after_its_timeout() -> None:
    ledger = Ledger()
    ledger.join(gate("a", timeout=10.0), now=0.0)
    ledger.observe(summary(used=0, total=1000), now=100.0)
    ledger.observe(summary(used=0, total=1000), now=109.0)
    assert ledger.reserved == 500
    ledger.observe(summary(used=0, total=1000), now=110.0)
    assert ledger.reserved == 0


def test_a_restarted_ledger_recognises_admitted_gates_from_the_stored_state() -> None:
    before = Ledger()
    before.join(gate("a"), now=0.0)
    before.join(gate("b", since=1.0), now=0.0)
    before.observe(summary(used=0, total=700), now=0.0)
    after = Ledger()
    after.merge_state(before.to_state())
    after.join(gate("a"), now=0.0)  # re-created from its serialized form
    after.join(gate("b", since=1.0), now=0.0)
    after.observe(summary(used=0, total=700), now=1.0)
    assert set(after.reservations) == {"a"}
    assert after.standing("a").admitted
    assert after.standing("b").position == 1
    assert after.reserved == 500


def test_merging_never_counts_a_release_twice() -> None:
    ledger = Ledger()
    ledger.join(gate("a"), now=0.0)
    ledger.observe(summary(used=0, total=1000), now=0.0)
    stored = ledger.to_state()
    ledger.observe(summary(used=500, total=1000), now=1.0)  # a spent its 500
    ledger.merge_state(stored)  # an older copy brings a back, and the latest summary releases it again
    assert ledger.reservations == {}
    assert ledger.to_state()["reservations"] == []  # so the store does not keep it either
    ledger.join(gate("b", since=1.0), now=0.0)
    ledger.observe(summary(used=500, total=1000), now=2.0)
    assert set(ledger.reservations) == {"b"}
    assert ledger.standing("b").holders == 1
    assert ledger.reserved == 500


def test_standing_line_names_what_a_waiting_person_needs() -> None:
    ledger = Ledger()
    for i in range(3):
        ledger.join(gate(f"g{i}", since=i), now=0.0)
    ledger.observe(summary(used=0, total=900), now=0.0)
    assert ledger.standing("g2").describe(TYPE) == (
        "Tamtam credits MaxKeyAccountsUnlocked: 900 remaining, 500 reserved by 1 admitted run, 500 needed; "
        "2nd in line"
    )
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
    ]


async def test_a_gate_holding_an_older_answer_applies_the_newest_instead() -> None:
    desk = ReservationDesk("tamtam_default", TYPE, MemoryStore())
    await desk.join(gate("a"))
    older = lines(used=1000, total=1600)
    newer = lines(used=1500, total=1600)  # a spent its 500
    assert desk.check("a", older, older).admitted
    await desk.join(gate("b", since=1.0))
    desk.check("b", newer, newer)
    # A gate resumes with the answer it was handed before the newer one landed: reading it would see
    # used_credits drop and take it for a new period.
    standing = desk.check("b", older, newer)
    assert desk.ledger.period_started_at == 0.0
    assert standing.remaining == 100
    await desk.written()


def test_gates_joining_and_leaving_between_summaries_keep_the_order() -> None:
    ledger = Ledger()
    ledger.join(gate("big", 800, since=0.0), now=0.0)
    ledger.join(gate("small", 100, since=1.0), now=0.0)
    ledger.observe(summary(used=500, total=1000), now=1.0)  # 500 remaining: big does not fit
    assert ledger.reservations == {}
    assert ledger.standing("small").position == 2
    ledger.leave("big")  # timed out: small is first in line now, and fits
    assert ledger.join(gate("late", 100, since=2.0), now=2.0) is False  # not before small
    assert ledger.catch_up(now=2.0) == 2
    assert list(ledger.reservations) == ["small", "late"]
    ledger.join(gate("huge", 400, since=3.0), now=3.0)
    ledger.join(gate("last", 100, since=4.0), now=3.0)
    assert ledger.standing("last").position == 2
    ledger.leave("huge")
    assert ledger.catch_up(now=3.0) == 1
    assert ledger.reserved == 300


async def test_two_triggerers_sharing_a_store_see_each_others_reservations_at_their_next_answer() -> None:
    store = MemoryStore()  # stands in for the Variable every triggerer reads and writes
    one = ReservationDesk("tamtam_default", TYPE, store)
    two = ReservationDesk("tamtam_default", TYPE, store)
    await one.join(gate("a", 600))
    await two.join(gate("b", 600, since=1.0))
    short = lines(used=0, total=500)
    one.check("a", short, short)
    two.check("b", short, short)
    await two.sync()
    topped_up = lines(used=0, total=1100)
    assert one.check("a", topped_up, topped_up).admitted
    await one.written()
    await two.sync()  # what the other triggerer does after each answer of its own poll
    later = lines(used=0, total=1100)
    standing = two.check("b", later, later)
    assert (standing.admitted, standing.reserved, standing.holders) == (False, 600, 1)
    assert standing.position == 1
    # (An answer applied by the second triggerer before that read would have admitted b as well: the
    # overdraw the README bounds to about one poll interval, which routing the gates to one triggerer
    # removes.)


def test_a_gate_admitted_by_a_killed_triggerer_stays_admitted_once_its_reservation_is_spent() -> None:
    killed = Ledger()
    killed.join(gate("moved"), now=0.0)
    killed.observe(summary(used=0, total=1000), now=0.0)  # admitted, written; then the triggerer dies
    taker = Ledger()  # the triggerer the trigger moves to already had the desk, and queues the gate
    taker.join(gate("moved"), now=1.0)
    taker.join(gate("other", since=1.0), now=1.0)
    taker.merge_state(killed.to_state())
    taker.observe(summary(used=600, total=1100), now=2.0)  # spending covers its stretch
    assert "moved" not in taker.reservations
    assert taker.standing("moved").admitted  # it still reports success, rather than waiting forever
    assert taker.standing("other").admitted
    restarted = Ledger()  # or a restarted triggerer that loads the store before the gate joins
    restarted.merge_state(killed.to_state())
    restarted.join(gate("moved"), now=3.0)
    assert "moved" not in restarted.waiting
    assert restarted.admitted == {"moved"}
