"""SQLModel tables (one module per aggregate) and API schemas.

Importing this package registers every table on `SQLModel.metadata` (Alembic reads it).
"""

from models.accreditation import Accreditation
from models.audit import AuditLog
from models.base import metadata
from models.definition import WorkflowDefinition, WorkflowExecution
from models.document import Document, DocumentEvent, DocumentFile, DocumentSigner
from models.enrichment import Parcel, ScoringModel
from models.event import Event
from models.investor import Investor
from models.lead import Lead, LeadSource, LeadStatus, Property
from models.message import Consent, Message, MessageTemplate
from models.notification import Notification
from models.offering import Allocation, Offering
from models.opportunity import Opportunity, OpportunityMatch, Pipeline, StageChange
from models.staff_session import SignInAttempt, SignInLink, StaffSession
from models.task import Task
from models.tenant import ApiKey, AssignmentCursor, Role, Tenant, User
from models.timeline import TimelineEntry
from models.webhook import WebhookEvent

__all__ = [
    "Accreditation", "Allocation", "ApiKey", "AssignmentCursor", "AuditLog", "Consent", "Document", "DocumentEvent",
    "DocumentFile", "DocumentSigner", "Event",
    "Investor", "Lead", "LeadSource", "LeadStatus", "Message", "MessageTemplate", "Notification", "Offering",
    "Opportunity", "OpportunityMatch", "Parcel", "Pipeline", "Property", "Role", "ScoringModel", "SignInAttempt",
    "SignInLink", "StaffSession", "StageChange",
    "Task", "Tenant", "TimelineEntry", "User", "WebhookEvent", "WorkflowDefinition", "WorkflowExecution",
    "metadata",
]
