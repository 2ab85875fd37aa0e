"""AccreditationWorkflow's activities: thin over services/accreditation.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from services.accreditation import expire, remind


class AccreditationActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def remind_accreditation(self, accreditation_id: str, days_left: int) -> str:
        with Session(self._engine) as session:
            return remind(session, accreditation_id, days_left)

    @activity.defn
    def expire_accreditation(self, accreditation_id: str, at: str) -> str:
        """`at`: the workflow's time at the end of the window (the wall clock's, but for a time-skipping test)."""
        with Session(self._engine) as session:
            return expire(session, accreditation_id, at=datetime.fromisoformat(at))
