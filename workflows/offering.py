"""OfferingWorkflow: one capital raise (`offering-{tenant}-{offering}`), the one place that orders its commitments.

Staff move the offering (draft → open → active → closed) and each investor's allocation (soft commit → commit →
fund, or withdraw) through validated updates: a move a rule refuses is rejected with every reason (the API's 409).
A commitment that would take the committed total past the target is waitlisted in commitment order; a withdrawal
frees its place and the waitlisted commitments are promoted strictly in order while they fit. Each accepted move is
written by one activity (rows, the investors' events, timeline), keyed by the update's id."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from models.offering import OFFERING_MOVES

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


class OfferingInput(BaseModel):
    tenant_id: str
    offering_id: str
    opportunity_id: str
    target_amount: Decimal
    minimum_investment: Decimal
    status: str = "draft"


class Slot(BaseModel):
    investor_id: str
    amount: Decimal
    status: str  # soft_commit, committed, waitlisted, funded, withdrawn
    sequence: int | None = None  # commitment order
    funded_amount: Decimal | None = None
    funded_on: str | None = None
    funding_method: str | None = None
    subscription_document_id: str | None = None


class AllocationFacts(BaseModel):
    """Read from the database by the caller (services/offerings.py): whether the investor may commit under the
    offering's rule now, and whether the subscription agreement named is signed by every party."""

    eligibility_problem: str | None = None
    subscription_signed: bool = False
    minimum_commitment: Decimal | None = None  # a 506(c) verification by the minimum-investment method holds from it
    close_date: date | None = None  # the offering's: no new money after it (UTC)


class AllocationMove(BaseModel):
    investor_id: str
    action: str  # soft_commit, commit, fund, withdraw
    amount: Decimal | None = None  # soft_commit
    subscription_document_id: str | None = None  # commit
    funded_amount: Decimal | None = None  # fund
    funded_on: str | None = None
    funding_method: str | None = None
    actor: str = "staff"
    facts: AllocationFacts = Field(default_factory=AllocationFacts)


class OfferingMove(BaseModel):
    status: str
    actor: str = "staff"


class OfferingState(BaseModel):
    offering_id: str
    status: str
    target_amount: Decimal
    committed: Decimal  # committed and funded commitments
    remaining: Decimal
    slots: list[Slot]


class CommitRefused(BaseModel):
    """A signed subscription agreement whose soft commit could not be committed, and why (for the timeline)."""

    tenant_id: str
    offering_id: str
    investor_id: str
    document_id: str
    reasons: list[str]
    key: str


class OfferingChange(BaseModel):
    """What one accepted move changed, for the activity to write."""

    tenant_id: str
    offering_id: str
    status: str
    slots: list[Slot]  # the allocations this move changed, as they are now
    events: list[tuple[str, str]]  # (investor id, event name) to emit
    actor: str
    key: str  # workflow id + update id


@workflow.defn
class OfferingWorkflow:
    @workflow.init
    def __init__(self, request: OfferingInput) -> None:
        self._request = request
        self._status = request.status
        self._slots: dict[str, Slot] = {}
        self._sequence = 0
        # Moves are decided at once (the state is claimed before any await, so the next validator sees it) but
        # written one after another, in the order decided: a retried write never lands after a later one.
        self._writing = asyncio.Lock()

    @workflow.run
    async def run(self, request: OfferingInput) -> OfferingState:
        await workflow.wait_condition(lambda: self._status == "closed" and not self._unfunded())
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    def _unfunded(self) -> bool:
        """A closed offering still waits for the wires of its commitments."""
        return any(s.status == "committed" for s in self._slots.values())

    def _committed(self) -> Decimal:
        return sum((s.amount for s in self._slots.values() if s.status in ("committed", "funded")), Decimal(0))

    @workflow.update
    async def set_status(self, move: OfferingMove) -> OfferingState:
        self._status = move.status
        await self._write([], [], move.actor)
        return self.state()

    @set_status.validator
    def _check_status(self, move: OfferingMove) -> None:
        allowed = OFFERING_MOVES.get(self._status, set())
        if move.status not in allowed:
            raise ApplicationError(f"an offering cannot move from {self._status} to {move.status} (allowed: "
                                   f"{', '.join(sorted(allowed)) or 'none: it is closed'})", type="OfferingRefused",
                                   non_retryable=True)

    @workflow.update
    async def allocate(self, move: AllocationMove) -> OfferingState:
        return await self._allocate(move)

    @workflow.signal
    async def subscription_signed(self, move: AllocationMove) -> None:
        """A subscription agreement signed by every party (the relay, from the deal's document.completed): the soft
        commit it was sent for is committed exactly as staff's commit would be, or the refusal is written with
        every reason. Heard again (a redelivery), or after the allocation moved on, it changes nothing."""
        slot = self._slots.get(move.investor_id)
        if slot is None or slot.status in ("committed", "waitlisted", "funded"):
            return  # committed already (this agreement, or staff by hand), or nothing to commit
        key = f"{workflow.info().workflow_id}:signed:{move.subscription_document_id}:{move.investor_id}"
        problems = self._allocation_problems(move)
        if problems:
            await workflow.execute_activity(
                "record_commit_refused", CommitRefused(
                    tenant_id=self._request.tenant_id, offering_id=self._request.offering_id,
                    investor_id=move.investor_id, document_id=move.subscription_document_id or "", reasons=problems,
                    key=key), start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
            return
        await self._allocate(move, key)

    async def _allocate(self, move: AllocationMove, key: str | None = None) -> OfferingState:
        slot = self._slots.get(move.investor_id)
        changed: list[Slot] = []
        events: list[tuple[str, str]] = []
        if move.action == "soft_commit":
            slot = Slot(investor_id=move.investor_id, amount=move.amount, status="soft_commit")
            self._slots[move.investor_id] = slot
            changed, events = [slot], [(move.investor_id, "investor.soft_committed")]
        elif move.action == "commit":
            self._sequence += 1
            slot.sequence, slot.subscription_document_id = self._sequence, move.subscription_document_id
            fits = self._committed() + slot.amount <= self._request.target_amount
            slot.status = "committed" if fits else "waitlisted"
            changed, events = [slot], [(move.investor_id, "investor.committed" if fits else "investor.waitlisted")]
        elif move.action == "fund":
            slot.status, slot.funded_amount = "funded", move.funded_amount
            slot.funded_on, slot.funding_method = move.funded_on, move.funding_method
            changed, events = [slot], [(move.investor_id, "investor.funded")]
        elif move.action == "withdraw":
            slot.status = "withdrawn"
            changed, events = [slot], [(move.investor_id, "investor.withdrawn")]
            for waiting in sorted((s for s in self._slots.values() if s.status == "waitlisted"),
                                  key=lambda s: s.sequence or 0):
                if self._committed() + waiting.amount > self._request.target_amount:
                    break  # strictly in commitment order: a later, smaller one does not jump the line
                waiting.status = "committed"  # its place came free
                changed.append(waiting)
                events.append((waiting.investor_id, "investor.committed"))
        await self._write(changed, events, move.actor, key)
        return self.state()

    @allocate.validator
    def _check_allocation(self, move: AllocationMove) -> None:
        problems = self._allocation_problems(move)
        if problems:
            raise ApplicationError("; ".join(problems), *problems, type="AllocationRefused", non_retryable=True)

    def _allocation_problems(self, move: AllocationMove) -> list[str]:
        slot = self._slots.get(move.investor_id)
        status = slot.status if slot else None
        if move.action == "soft_commit":
            problems = []
            if self._status not in ("open", "active"):
                problems.append(f"the offering is {self._status}: soft commits are taken while it is open or active")
            if status in ("committed", "waitlisted", "funded"):
                problems.append(f"the investor has already {status.replace('_', ' ')}")
            if move.amount is None or move.amount < self._request.minimum_investment:
                problems.append(f"the minimum investment is {self._request.minimum_investment:,.2f}")
            elif move.amount > self._request.target_amount:
                problems.append(f"the amount is above the whole raise ({self._request.target_amount:,.2f})")
            if move.facts.eligibility_problem:
                problems.append(move.facts.eligibility_problem)
            problems += self._below_floor(move, move.amount) + self._past_close(move)
            return problems
        if slot is None or status == "withdrawn":
            return ["the investor has no allocation in this offering (soft commit first)"]
        if move.action == "commit":
            problems = []
            if self._status != "active":
                problems.append(f"the offering is {self._status}: commitments are taken while it is active")
            if status != "soft_commit":
                problems.append(f"the allocation is {status.replace('_', ' ')}, not a soft commit")
            if not move.facts.subscription_signed:
                problems.append("a commitment needs the investor's subscription agreement signed and countersigned "
                                "(a completed subscription_agreement document of this deal that they signed)")
            if move.facts.eligibility_problem:
                problems.append(move.facts.eligibility_problem)
            problems += self._below_floor(move, slot.amount) + self._past_close(move)
            return problems
        if move.action == "fund":
            problems = []
            if status != "committed":
                problems.append(f"the allocation is {status.replace('_', ' ')}: only a commitment is funded")
            if move.funded_amount is None or move.funded_amount <= 0:
                problems.append("the amount received must be positive")
            if move.funding_method not in ("wire", "ach", "check"):
                problems.append("funding_method is wire, ach or check")
            return problems
        if move.action == "withdraw":
            return ["a funded allocation cannot be withdrawn (refund it outside the raise)"] if status == "funded" \
                else []
        return [f"unknown action {move.action!r}"]

    @staticmethod
    def _below_floor(move: AllocationMove, amount: Decimal | None) -> list[str]:
        floor = move.facts.minimum_commitment
        if floor is None or amount is None or amount >= floor:
            return []
        return [f"the investor's accreditation rests on the minimum-investment method, which holds for a commitment "
                f"of at least {floor:,.2f} (not {amount:,.2f})"]

    @staticmethod
    def _past_close(move: AllocationMove) -> list[str]:
        close = move.facts.close_date
        if close is None or workflow.now().date() <= close:
            return []
        return [f"the offering's close date ({close:%Y-%m-%d}) has passed: it takes no new soft commit or commitment "
                "(commitments already made are still funded)"]

    async def _write(self, changed: list[Slot], events: list[tuple[str, str]], actor: str,
                     key: str | None = None) -> None:
        key = key or f"{workflow.info().workflow_id}:{workflow.current_update_info().id}"
        changed, status = [s.model_copy() for s in changed], self._status
        async with self._writing:
            await self._record(changed, events, actor, status, key)

    async def _record(self, changed: list[Slot], events: list[tuple[str, str]], actor: str, status: str,
                      key: str) -> None:
        await workflow.execute_activity(
            "record_offering_change",
            OfferingChange(tenant_id=self._request.tenant_id, offering_id=self._request.offering_id,
                           status=status, slots=changed, events=events, actor=actor, key=key),
            start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)

    @workflow.query
    def state(self) -> OfferingState:
        committed = self._committed()
        return OfferingState(offering_id=self._request.offering_id, status=self._status,
                             target_amount=self._request.target_amount, committed=committed,
                             remaining=max(self._request.target_amount - committed, Decimal(0)),
                             slots=sorted(self._slots.values(), key=lambda s: (s.sequence or 10**9, s.investor_id)))
