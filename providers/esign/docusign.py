"""DocuSign eSignature through the real docusign-esign SDK, authenticated with the JWT grant.

- `create_envelope`: one PDF, each signer with its routing order (all 1 when signing in parallel), a sign-here and
  a date-signed tab on the template's anchors (`/sig_<role>/`, `/date_<role>/`, white text in the PDF), the
  envelope's own expiry, and an envelope-level eventNotification: Connect JSON SIM to our webhook, HMAC-signed.
  Idempotent per document: the envelope carries our document id as a (hidden) custom field, and a create first
  looks for an envelope with it (Envelopes: listStatusChanges with `custom_field`), so a retry after a lost
  answer returns the envelope the first attempt made instead of sending a second one.
- `remind`: resend (DocuSign re-notifies every recipient still to act); `void`: status voided with the reason;
  `completed`: the combined signed PDF and the audit trail (each signer's IP and times).
- JWT: `request_jwt_user_token` against `docusign_oauth_host`, the token kept until shortly before it expires
  (and fetched again once if DocuSign answers 401 before then).

Failures are `ProviderError`s: a 4xx for a bad request is final, 5xx/429/timeouts/no answer are retryable.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import certifi
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from docusign_esign import (
    ApiClient, ConnectEventData, CustomFields, DateSigned, Document, Envelope, EnvelopeDefinition, EnvelopesApi,
    EventNotification, Expirations, Notification, Recipients, Reminders, Signer, SignHere, Tabs, TextCustomField,
)
from docusign_esign.client.api_exception import ApiException, ArgumentException
from docusign_esign.client.auth.oauth import OAuth

from core.settings import Settings
from providers.base import ProviderError, http_error
from providers.esign.base import CompletedEnvelope, EnvelopeEvent, EnvelopeRequest, ProviderEvent, parse_time
from providers.esign.docusign_connect import CONNECT_EVENTS, DOCUMENT_FIELD, TENANT_FIELD

log = logging.getLogger("dealflow.providers.docusign")
T = TypeVar("T")

CONNECT_PATH = "/api/v1/webhooks/docusign/connect"
SCOPES = (OAuth.SCOPE_SIGNATURE, OAuth.SCOPE_IMPERSONATION)  # impersonation: the JWT grant acts as the user
TOKEN_LIFETIME = 3600  # what the JWT assertion asks for; DocuSign's access tokens last an hour
REFRESH_MARGIN = 300.0  # a token is renewed this long before it expires (or at 90% of a shorter life)
LOOKUP_DAYS = 30  # how far back a create looks for an envelope already made for the document
MAX_EXPIRY_DAYS = 999  # DocuSign's limit on expireAfter
# Audit trail actions (GET .../audit_events) and what they are in our vocabulary; others are left out.
AUDIT_ACTIONS = {"sent invitations": EnvelopeEvent.sent, "viewed": EnvelopeEvent.delivered,
                 "signed": EnvelopeEvent.signed, "declined": EnvelopeEvent.declined, "voided": EnvelopeEvent.voided}


class DocuSignProvider:
    name = "docusign"

    def __init__(self, settings: Settings, *, ca_certs: str | None = None) -> None:
        """`ca_certs`: the roots the TLS connections trust (default: certifi's, as the SDK does); tests pass the
        in-repo fake's own certificate."""
        missing = [f"DEALFLOW_{name.upper()}" for name in ("docusign_integration_key", "docusign_user_id",
                                                          "docusign_account_id", "docusign_private_key")
                   if not getattr(settings, name)]
        if missing:
            raise ProviderError(f"DocuSign is not configured: set {', '.join(missing)}", retryable=False,
                                code="not_configured")
        self._settings = settings
        self._account_id = settings.docusign_account_id
        self._private_key = _private_key(settings.docusign_private_key or "")
        self._client = ApiClient(host=settings.docusign_base_url.rstrip("/"),
                                 oauth_host_name=settings.docusign_oauth_host)
        timeout = settings.provider_timeout_seconds
        self._client.rest_client.pool_manager = _TimedPool(
            urllib3.Timeout(connect=timeout, read=timeout), num_pools=4, maxsize=8, cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs or certifi.where(),
            # retried only where nothing was sent yet (a connection refused); the rest is the caller's to retry
            retries=urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0))
        self._envelopes = EnvelopesApi(self._client)
        self._token_lock = threading.Lock()
        self._token_renew_at = 0.0  # time.monotonic() after which the token is fetched again

    # --- the contract -----------------------------------------------------------------------------------------

    def create_envelope(self, request: EnvelopeRequest) -> str:
        existing = self.find_envelope(request.document_id)
        if existing:
            log.info("document %s already has envelope %s: not sending another", request.document_id, existing)
            return existing
        definition = self.envelope_definition(request)
        summary = self._call("create envelope", lambda: self._envelopes.create_envelope(
            self._account_id, envelope_definition=definition))
        return summary.envelope_id

    def find_envelope(self, document_id: str) -> str | None:
        """The envelope already made for this document (in the last LOOKUP_DAYS), if any."""
        since = (datetime.now(UTC) - timedelta(days=LOOKUP_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        found = self._call("look up envelope", lambda: self._envelopes.list_status_changes(
            self._account_id, custom_field=f"{DOCUMENT_FIELD}={document_id}", from_date=since,
            include="custom_fields"))
        # DocuSign's custom_field search may match partially (`%` is its wildcard): only an exact value counts.
        for envelope in found.envelopes or []:
            fields = (envelope.custom_fields.text_custom_fields or []) if envelope.custom_fields else []
            if envelope.envelope_id and any(f.name == DOCUMENT_FIELD and f.value == document_id for f in fields):
                return envelope.envelope_id
        return None

    def remind(self, envelope_id: str, emails: list[str]) -> None:
        """DocuSign's resend re-notifies every recipient who has still to act (the ones who signed are not
        asked again), which is who `emails` names."""
        self._call("resend envelope", lambda: self._envelopes.update(
            self._account_id, envelope_id, resend_envelope="true", envelope=Envelope()))

    def void(self, envelope_id: str, reason: str) -> None:
        try:
            self._call("void envelope", lambda: self._envelopes.update(
                self._account_id, envelope_id, envelope=Envelope(status="voided", voided_reason=reason[:200])))
        except ProviderError as exc:
            if exc.status != 400:
                raise
            status = self._call("read envelope", lambda: self._envelopes.get_envelope(
                self._account_id, envelope_id)).status
            if status == "voided":
                return  # voided already (a retry, or DocuSign expired it): it stays voided
            raise ProviderError(f"DocuSign cannot void envelope {envelope_id}: it is {status} ({exc.message})",
                                retryable=False, code="cannot_void", status=400) from None

    def completed(self, envelope_id: str) -> CompletedEnvelope:
        status = self._call("read envelope", lambda: self._envelopes.get_envelope(
            self._account_id, envelope_id)).status
        if status != "completed":  # Connect said completed; DocuSign's reads can lag its events a moment
            raise ProviderError(f"DocuSign envelope {envelope_id} is {status}, not completed", retryable=True,
                                code="not_completed")
        pdf = self._call("download signed PDF", lambda: self._envelopes.get_document(
            self._account_id, "combined", envelope_id, certificate="false"))
        recipients = self._call("read recipients", lambda: self._envelopes.list_recipients(
            self._account_id, envelope_id))
        audit = self._call("read audit trail", lambda: self._envelopes.list_audit_events(
            self._account_id, envelope_id))
        as_json = self._client.sanitize_for_serialization  # SDK models as DocuSign's JSON (eventFields, userId)
        signers = [as_json(s) for s in (recipients.signers or [])]
        events = audit_trail(envelope_id, [as_json(e) for e in (audit.audit_events or [])], signers)
        return CompletedEnvelope(signed_pdf=pdf if isinstance(pdf, bytes) else bytes(pdf, "latin-1"), events=events)

    # --- the envelope -----------------------------------------------------------------------------------------

    def envelope_definition(self, request: EnvelopeRequest) -> EnvelopeDefinition:
        if request.signing_order not in ("sequential", "parallel"):
            raise ProviderError(f"signing_order must be sequential or parallel, not {request.signing_order!r}",
                                retryable=False, code="bad_request")
        if not request.signers:
            raise ProviderError("an envelope needs at least one signer", retryable=False, code="bad_request")
        orders = routing_orders(request)
        signers = []
        for number, (signer, order) in enumerate(zip(request.signers, orders, strict=True), start=1):
            tabs = Tabs(sign_here_tabs=[SignHere(**_anchor(f"/sig_{signer.role}/"))],
                        date_signed_tabs=[DateSigned(**_anchor(f"/date_{signer.role}/"))])
            signers.append(Signer(email=signer.email, name=signer.name, recipient_id=str(number),
                                  routing_order=str(order), role_name=signer.role, tabs=tabs))
        days = expiry_days(request.expires_at)
        notification = Notification(
            use_account_defaults="false",
            # Reminders are the workflow's (remind()), on its own schedule: DocuSign's are off.
            reminders=Reminders(reminder_enabled="false"),
            expirations=Expirations(expire_enabled="true", expire_after=str(days),
                                    expire_warn=str(min(2, days - 1))))
        return EnvelopeDefinition(
            email_subject=f"Please sign: {request.title}"[:100],  # DocuSign's limit
            status="sent",
            documents=[Document(document_base64=base64.b64encode(request.pdf).decode("ascii"),
                                name=request.title[:100], file_extension="pdf", document_id="1")],
            recipients=Recipients(signers=signers),
            custom_fields=CustomFields(text_custom_fields=[
                TextCustomField(name=DOCUMENT_FIELD, value=request.document_id, show="false", required="false"),
                TextCustomField(name=TENANT_FIELD, value=request.tenant_id, show="false", required="false")]),
            notification=notification,
            event_notification=self._event_notification(request))

    def _event_notification(self, request: EnvelopeRequest) -> EventNotification | None:
        url = request.callback_url or (f"{self._settings.public_url}{CONNECT_PATH}" if self._settings.public_url
                                       else None)
        if not url:
            log.warning("no DEALFLOW_PUBLIC_URL and no callback URL: envelope events for document %s come only "
                        "from an account-level Connect configuration", request.document_id)
            return None
        return EventNotification(
            url=url, delivery_mode="SIM", events=list(CONNECT_EVENTS), include_hmac="true",
            require_acknowledgment="true", logging_enabled="true", include_envelope_void_reason="true",
            include_documents="false", include_certificate_of_completion="false",
            event_data=ConnectEventData(version="restv2.1", format="json",
                                        include_data=["recipients", "custom_fields"]))

    # --- calls and the token ----------------------------------------------------------------------------------

    def _call(self, what: str, call) -> Any:
        """One SDK call with a valid token; a 401 fetches a new token and tries once more."""
        for attempt in (1, 2):
            self._ensure_token(force=attempt == 2)
            try:
                return call()
            except ApiException as exc:
                if exc.status == 401 and attempt == 1:
                    continue
                raise _api_error(f"DocuSign {what}", exc) from None
            except urllib3.exceptions.HTTPError as exc:
                raise http_error(None, f"DocuSign {what}: no answer ({exc.__class__.__name__}: {exc})",
                                 "unreachable") from None
        raise AssertionError("unreachable")

    def _ensure_token(self, force: bool = False) -> None:
        with self._token_lock:
            if not force and time.monotonic() < self._token_renew_at:
                return
            try:
                token = self._client.request_jwt_user_token(
                    client_id=self._settings.docusign_integration_key, user_id=self._settings.docusign_user_id,
                    oauth_host_name=self._settings.docusign_oauth_host, private_key_bytes=self._private_key,
                    expires_in=TOKEN_LIFETIME, scopes=SCOPES)
            except ApiException as exc:
                raise self._token_error(exc) from None
            except ArgumentException as exc:
                raise ProviderError(f"DocuSign JWT: {exc}", retryable=False, code="jwt_config") from None
            except urllib3.exceptions.HTTPError as exc:
                raise http_error(None, f"DocuSign OAuth ({self._settings.docusign_oauth_host}) did not answer: "
                                       f"{exc.__class__.__name__}", "unreachable") from None
            except ValueError as exc:  # a 2xx that is not the token's JSON
                raise http_error(None, f"DocuSign OAuth answered something unreadable: {exc}") from None
            lifetime = float(token.expires_in or TOKEN_LIFETIME)
            self._token_renew_at = time.monotonic() + lifetime - min(REFRESH_MARGIN, lifetime * 0.1)

    def _token_error(self, exc: ApiException) -> ProviderError:
        body = _json(exc.body)
        error = body.get("error") if isinstance(body, dict) else None
        if error == "consent_required":
            host, key = self._settings.docusign_oauth_host, self._settings.docusign_integration_key
            return ProviderError(
                "DocuSign: the user has not granted consent to the integration key. Open "
                f"https://{host}/oauth/auth?response_type=code&scope={'+'.join(SCOPES)}&client_id={key}"
                "&redirect_uri=<a redirect URI of the key> once, signed in as that user (docs/docusign.md)",
                retryable=False, code="consent_required", status=exc.status)
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429):
            return ProviderError(f"DocuSign refused the JWT grant ({exc.status} {error or exc.reason}): check the "
                                 "integration key, user id, RSA key pair and OAuth host", retryable=False,
                                 code=error or str(exc.status), status=exc.status)
        return http_error(exc.status or None, f"DocuSign OAuth failed: {exc.status} {exc.reason}")


class _TimedPool(urllib3.PoolManager):
    """The SDK passes `timeout=None` (no limit at all) to urllib3 on every call not given a `_request_timeout`, and
    its JWT token request cannot be given one: each request without a timeout gets the provider timeout here."""

    def __init__(self, timeout: urllib3.Timeout, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._timeout = timeout

    def urlopen(self, method: str, url: str, redirect: bool = True, **kwargs: Any):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().urlopen(method, url, redirect=redirect, **kwargs)


def routing_orders(request: EnvelopeRequest) -> list[int]:
    """Parallel: everyone 1. Sequential: the signers' own orders, or 1, 2, ... in list order when they were
    all left at the default (the same order for all would make it parallel)."""
    if request.signing_order == "parallel":
        return [1] * len(request.signers)
    given = [s.routing_order for s in request.signers]
    return list(range(1, len(given) + 1)) if len(given) > 1 and len(set(given)) == 1 else given


def expiry_days(expires_at: datetime, now: datetime | None = None) -> int:
    """DocuSign expires envelopes in whole days after sending: the days until `expires_at`, rounded up."""
    seconds = (expires_at - (now or datetime.now(UTC))).total_seconds()
    return max(1, min(MAX_EXPIRY_DAYS, math.ceil(seconds / 86400)))


def audit_trail(envelope_id: str, audit_events: list[dict[str, Any]], signers: list[dict[str, Any]]
                ) -> list[ProviderEvent]:
    """The envelope's audit events (each a list of eventFields name/value pairs) as ProviderEvents, with the
    signer each concerns (by the recipient's userId, else their name; "Sent Invitations" names the recipient's
    address in Information) and the IP it came from. `completed` is when the envelope's status first reads so."""
    by_user = {s.get("userId"): s for s in signers if s.get("userId")}
    by_name = {s.get("name"): s for s in signers if s.get("name")}
    events: list[ProviderEvent] = []
    completed = False
    for number, audit_event in enumerate(audit_events, start=1):
        fields = {f.get("name"): f.get("value") for f in audit_event.get("eventFields") or [] if isinstance(f, dict)}
        if not fields.get("logTime"):
            continue
        at = parse_time(fields["logTime"])
        kind = AUDIT_ACTIONS.get((fields.get("Action") or "").strip().lower())
        if kind is not None:
            email = None
            if kind == EnvelopeEvent.sent:
                match = re.search(r"\[([^\]\s]+@[^\]\s]+)\]", fields.get("Information") or "")
                email = match.group(1) if match else None
            else:
                signer = by_user.get(fields.get("UserId")) or by_name.get(fields.get("UserName")) or {}
                email = signer.get("email")
            events.append(ProviderEvent(
                event_id=f"docusign:{envelope_id}:audit:{number}", envelope_id=envelope_id, event=kind, at=at,
                recipient_email=email, ip=fields.get("ClientIPAddress") or None,
                detail=(fields.get("Message") or None)))
        if not completed and (fields.get("EnvelopeStatus") or "").lower() == "completed":
            completed = True
            events.append(ProviderEvent(event_id=f"docusign:{envelope_id}:audit:{number}:completed",
                                        envelope_id=envelope_id, event=EnvelopeEvent.completed, at=at))
    return events


def _anchor(text: str) -> dict[str, str]:
    # The anchor must be there: a template without it is a 400 from DocuSign, not a document nobody can sign.
    return {"anchor_string": text, "anchor_units": "pixels", "anchor_x_offset": "0", "anchor_y_offset": "0",
            "anchor_ignore_if_not_present": "false", "anchor_case_sensitive": "true"}


def _private_key(value: str) -> bytes:
    """PEM text (newlines may come escaped as \\n from an env file) or the path of a PEM file."""
    text = value.strip()
    if "-----BEGIN" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ProviderError("DEALFLOW_DOCUSIGN_PRIVATE_KEY is neither PEM text nor the path of a file",
                                retryable=False, code="jwt_config")
        text = path.read_text().strip()
    pem = text.replace("\\n", "\n").encode()
    try:  # refused now, with the variable's name, rather than as PyJWT's error at the first call
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProviderError(f"DEALFLOW_DOCUSIGN_PRIVATE_KEY is not a PEM private key without a passphrase: {exc}",
                            retryable=False, code="jwt_config") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ProviderError("DEALFLOW_DOCUSIGN_PRIVATE_KEY must be an RSA key (DocuSign's JWT grant is RS256)",
                            retryable=False, code="jwt_config")
    return pem


def _json(body: Any) -> Any:
    try:
        return json.loads(body) if body else None
    except (TypeError, ValueError):
        return None


def _api_error(what: str, exc: ApiException) -> ProviderError:
    body = _json(exc.body)
    reason = exc.reason or ""
    code = None
    if isinstance(body, dict):
        code = body.get("errorCode")
        reason = f"{code}: {body.get('message', '')}" if code else str(body)[:300]
    status = exc.status or None  # the SDK reports TLS failures as status 0
    return http_error(status, f"{what} failed ({exc.status}): {reason}"[:500], code)
