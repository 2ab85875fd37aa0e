"""Reading a tenant's row in an activity: a missing row (or another tenant's) is final, not retried."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import Session
from temporalio.exceptions import ApplicationError

T = TypeVar("T")


def owned(session: Session, model: type[T], row_id: str, tenant_id: str, what: str) -> T:
    row = session.get(model, row_id)
    if row is None or row.tenant_id != tenant_id:
        raise ApplicationError(f"{what} {row_id} not found", type="NotFound", non_retryable=True)
    return row
