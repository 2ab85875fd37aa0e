"""OfferingWorkflow's activity: thin over services/offerings.py."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from services.offerings import record_change, record_commit_refused
from workflows.offering import CommitRefused, OfferingChange


class OfferingActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def record_offering_change(self, change: OfferingChange) -> None:
        with Session(self._engine) as session:
            record_change(session, change)

    @activity.defn
    def record_commit_refused(self, refused: CommitRefused) -> None:
        with Session(self._engine) as session:
            record_commit_refused(session, refused)
