"""Fake of DocuSign: the OAuth JWT grant and the eSignature REST API v2.1 calls the provider makes, over HTTPS (the
SDK posts its JWT to https://<oauth host>/oauth/token, nothing else), on one port for both hosts.

- `POST /oauth/token` (grant_type jwt-bearer): the assertion's RS256 signature is verified with the test key's public
  half; iss = integration key, sub = user id, aud = the OAuth host, scope includes `signature`.
- `/restapi/v2.1/accounts/{account}/envelopes...` with the bearer token: create (shape-checked: base64 PDF, signers
  with routing orders and anchor tabs, eventNotification with HMAC and the events, expirations), list by custom
  field (the idempotency lookup; needs from_date as the real one does), get, update (void / resend), recipients,
  audit events (DocuSign's eventFields name/value shape, with each signer's IP and times) and the combined PDF.

Tests act for the signers with `sign(...)`/`decline(...)`, and build Connect messages with `connect_message(...)`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.fakes.server import FakeServer, Recorded, Reply

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ENVELOPES = re.compile(r"^/restapi/v2\.1/accounts/(?P<account>[^/]+)/envelopes(?:/(?P<envelope>[^/]+)"
                       r"(?:/(?P<part>recipients|audit_events|documents/combined))?)?$")


def rsa_key_pem() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    return key, pem


def self_signed_tls(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own root): the fake serves it, the client trusts it as its CA file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "docusign-fake.crt", directory / "docusign-fake.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")  # DocuSign's 7 decimals


@dataclass
class FakeEnvelope:
    envelope_id: str
    definition: dict[str, Any]
    status: str = "sent"
    voided_reason: str | None = None
    resends: int = 0
    signers: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, str]] = field(default_factory=list)

    def custom_fields(self) -> dict[str, str]:
        fields = (self.definition.get("customFields") or {}).get("textCustomFields") or []
        return {f["name"]: f["value"] for f in fields}


class DocuSignFake(FakeServer):
    def __init__(self, *, integration_key: str, user_id: str, account_id: str, public_key, tls_dir: Path) -> None:
        super().__init__()
        self.integration_key, self.user_id, self.account_id, self.public_key = (integration_key, user_id,
                                                                                 account_id, public_key)
        self.cert_path, key_path = self_signed_tls(tls_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.token_lifetime = 3600
        self.tokens: dict[str, float] = {}  # access token -> expiry (time.monotonic)
        self.assertions: list[dict[str, Any]] = []  # the verified claims of every JWT grant
        self.consent_given = True
        self.envelopes: dict[str, FakeEnvelope] = {}
        self.lock = threading.Lock()
        self.signed_pdf_suffix = b"\n%signed-by-docusign-fake\n"

    @property
    def host(self) -> str:  # DEALFLOW_DOCUSIGN_OAUTH_HOST (the SDK adds https://)
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:  # DEALFLOW_DOCUSIGN_BASE_URL
        return f"https://{self.host}/restapi"

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # --- requests ---------------------------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        match = ENVELOPES.match(request.path)
        if not match:
            return self._error(404, "RESOURCE_NOT_FOUND", f"no resource {request.path}")
        if not self._authorised(request):
            return self._error(401, "AUTHORIZATION_INVALID_TOKEN",
                               "The access token provided is expired, revoked or malformed.")
        if match["account"] != self.account_id:
            return self._error(400, "ACCOUNT_LACKS_PERMISSIONS", "This user lacks sufficient permissions")
        envelope_id, part = match["envelope"], match["part"]
        if envelope_id is None:
            return self._create(request) if request.method == "POST" else self._list(request)
        envelope = self.envelopes.get(envelope_id)
        if envelope is None:
            return self._error(404, "ENVELOPE_DOES_NOT_EXIST", "The envelope specified either does not exist or "
                                                               "you have no rights to the envelope.")
        if request.method == "PUT" and part is None:
            return self._update(envelope, request)
        if part is None:
            return Reply(200, {"envelopeId": envelope.envelope_id, "status": envelope.status,
                               "voidedReason": envelope.voided_reason,
                               "emailSubject": envelope.definition.get("emailSubject")})
        if part == "recipients":
            return Reply(200, {"signers": envelope.signers, "recipientCount": str(len(envelope.signers))})
        if part == "audit_events":
            return Reply(200, {"auditEvents": [{"eventFields": [{"name": k, "value": v} for k, v in e.items()]}
                                               for e in envelope.audit]})
        pdf = base64.b64decode(envelope.definition["documents"][0]["documentBase64"])
        return Reply(200, pdf + self.signed_pdf_suffix, {"Content-Type": "application/pdf"})

    def _error(self, status: int, code: str, message: str) -> Reply:
        return Reply(status, {"errorCode": code, "message": message})

    def _authorised(self, request: Recorded) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            return scheme == "Bearer" and self.tokens.get(token, 0) > time.monotonic()

    def _token(self, request: Recorded) -> Reply:
        form = request.form()
        if form.get("grant_type") != JWT_GRANT:
            return Reply(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(form.get("assertion", ""), self.public_key, algorithms=["RS256"],
                                audience=self.host, issuer=self.integration_key,
                                options={"require": ["iss", "sub", "aud", "iat", "exp"]})
        except jwt.PyJWTError as exc:
            return Reply(400, {"error": "invalid_grant", "error_description": str(exc)})
        if claims["sub"] != self.user_id:
            return Reply(400, {"error": "invalid_grant", "error_description": "user_not_found"})
        if "signature" not in str(claims.get("scope", "")).split():
            return Reply(400, {"error": "invalid_scope"})
        if not self.consent_given:
            return Reply(400, {"error": "consent_required"})
        token = "fake-" + uuid.uuid4().hex
        with self.lock:
            self.assertions.append(claims)
            self.tokens[token] = time.monotonic() + self.token_lifetime
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime})

    def _create(self, request: Recorded) -> Reply:
        body = request.json()
        for signer in (body.get("recipients") or {}).get("signers") or []:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(signer.get("email", ""))):
                return self._error(400, "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT",
                                   "The email address for the recipient is invalid. The recipient Id follows.")
        problem = self.shape_problem(body)
        if problem:
            return self._error(400, "INVALID_REQUEST_BODY", problem)
        envelope = FakeEnvelope(envelope_id=str(uuid.uuid4()), definition=body)
        for signer in body["recipients"]["signers"]:
            envelope.signers.append({"recipientId": signer["recipientId"], "name": signer["name"],
                                     "email": signer["email"], "routingOrder": signer["routingOrder"],
                                     "roleName": signer.get("roleName"), "userId": str(uuid.uuid4()),
                                     "recipientType": "signer", "status": "sent"})
        envelope.audit.append(self._audit("Registered", "The envelope was created", "created", "Dealflow API"))
        first = min(int(s["routingOrder"]) for s in envelope.signers)
        for signer in envelope.signers:
            if int(signer["routingOrder"]) == first:
                envelope.audit.append(self._audit("Sent Invitations", f"Dealflow API sent an invitation to "
                                                  f"{signer['name']} [{signer['email']}]", "sent", "Dealflow API",
                                                  information=f"{signer['name']} [{signer['email']}]"))
        with self.lock:
            self.envelopes[envelope.envelope_id] = envelope
        return Reply(201, {"envelopeId": envelope.envelope_id, "status": "sent", "statusDateTime": _now(),
                           "uri": f"/envelopes/{envelope.envelope_id}"})

    @staticmethod
    def shape_problem(body: dict[str, Any]) -> str | None:
        """What the real API would refuse (or what the provider must always send); None when it is right."""
        documents = body.get("documents") or []
        if len(documents) != 1 or documents[0].get("fileExtension") != "pdf" or not documents[0].get("documentId"):
            return "one PDF document with a documentId is expected"
        try:
            if not base64.b64decode(documents[0].get("documentBase64", ""), validate=True).startswith(b"%PDF"):
                return "documentBase64 is not a PDF"
        except ValueError:
            return "documentBase64 is not base64"
        if body.get("status") != "sent":
            return "status must be sent"
        if not body.get("emailSubject") or len(body["emailSubject"]) > 100:
            return "emailSubject is required, at most 100 characters"
        signers = (body.get("recipients") or {}).get("signers") or []
        if not signers:
            return "at least one signer"
        for signer in signers:
            if not (signer.get("email") and signer.get("name") and signer.get("recipientId")
                    and str(signer.get("routingOrder", "")).isdigit()):
                return f"signer {signer} lacks email, name, recipientId or routingOrder"
            tabs, role = signer.get("tabs") or {}, signer.get("roleName")
            for kind, prefix in (("signHereTabs", "sig"), ("dateSignedTabs", "date")):
                anchors = [t.get("anchorString") for t in tabs.get(kind) or []]
                if not role or anchors != [f"/{prefix}_{role}/"]:
                    return f"{kind} of {signer['email']} must be anchored on /{prefix}_<roleName>/, not {anchors}"
        notice = body.get("eventNotification")
        if notice is not None:
            if notice.get("includeHMAC") != "true" or notice.get("deliveryMode") != "SIM" or not notice.get("url"):
                return "eventNotification must be SIM with includeHMAC"
            if (notice.get("eventData") or {}).get("version") != "restv2.1" or not notice.get("events"):
                return "eventNotification needs eventData restv2.1 and its events"
        expirations = ((body.get("notification") or {}).get("expirations") or {})
        if expirations.get("expireEnabled") != "true" or not str(expirations.get("expireAfter", "")).isdigit():
            return "notification.expirations must be enabled with expireAfter days"
        return None

    def _list(self, request: Recorded) -> Reply:
        if not any(request.query.get(k) for k in ("from_date", "envelope_ids", "folder_ids", "transaction_ids")):
            return self._error(400, "INVALID_REQUEST_PARAMETER",
                               "The request contained at least one invalid parameter. 'from_date' or 'envelope_ids' "
                               "or 'folder_ids' or 'transaction_ids' must be specified.")
        name, _, value = (request.query.get("custom_field") or [""])[0].partition("=")
        with self.lock:
            # like DocuSign's search, not only exact values (here: any value containing the one searched for)
            found = [e for e in self.envelopes.values() if not name or value in e.custom_fields().get(name, "")]
        include = (request.query.get("include") or [""])[0].split(",")
        rows = [{"envelopeId": e.envelope_id, "status": e.status,
                 **({"customFields": e.definition.get("customFields")} if "custom_fields" in include else {})}
                for e in found]
        return Reply(200, {"envelopes": rows, "resultSetSize": str(len(rows)), "totalSetSize": str(len(rows)),
                           "startPosition": "0", "endPosition": str(max(0, len(rows) - 1))})

    def _update(self, envelope: FakeEnvelope, request: Recorded) -> Reply:
        body = request.json() if request.body else {}
        if (request.query.get("resend_envelope") or [""])[0] == "true":
            envelope.resends += 1
            envelope.audit.append(self._audit("Resent", "The envelope was resent", envelope.status, "Dealflow API"))
        if body.get("status") == "voided":
            if envelope.status not in ("sent", "delivered"):
                return self._error(400, "ENVELOPE_CANNOT_VOID_INVALID_STATE",
                                   "Only envelopes in the 'Sent' or 'Delivered' states may be voided.")
            if not body.get("voidedReason"):
                return self._error(400, "INVALID_REQUEST_PARAMETER", "A voided reason is required")
            envelope.status, envelope.voided_reason = "voided", body["voidedReason"]
            envelope.audit.append(self._audit("Voided", f"The envelope was voided: {body['voidedReason']}",
                                              "voided", "Dealflow API"))
        return Reply(200, {"envelopeId": envelope.envelope_id})

    # --- what signers do ----------------------------------------------------------------------------------------

    @staticmethod
    def _audit(action: str, message: str, status: str, user: str, *, user_id: str = "", ip: str = "203.0.113.1",
               information: str = "", at: str | None = None) -> dict[str, str]:
        return {"logTime": at or _now(), "Source": "web", "UserName": user, "UserId": user_id, "Action": action,
                "Message": message, "EnvelopeStatus": status, "ClientIPAddress": ip, "Information": information,
                "GeoLocation": "", "Language": "english (us)"}

    def sign(self, envelope_id: str, email: str, ip: str, viewed_at: str, signed_at: str) -> None:
        """The signer opens and signs; the envelope completes when the last one has."""
        envelope = self.envelopes[envelope_id]
        signer = next(s for s in envelope.signers if s["email"] == email)
        signer.update(status="completed", deliveredDateTime=viewed_at, signedDateTime=signed_at)
        done = all(s["status"] == "completed" for s in envelope.signers)
        envelope.audit.append(self._audit("Viewed", f"{signer['name']} viewed the envelope", envelope.status,
                                          signer["name"], user_id=signer["userId"], ip=ip, at=viewed_at))
        envelope.status = "completed" if done else "delivered"
        envelope.audit.append(self._audit("Signed", f"{signer['name']} signed the envelope", envelope.status,
                                          signer["name"], user_id=signer["userId"], ip=ip, at=signed_at))


def connect_message(event: str, envelope_id: str, *, generated: str = "2026-12-02T18:05:32.1234567Z",
                    recipient_id: str | None = None, signers: list[dict[str, Any]] | None = None,
                    custom_fields: dict[str, str] | None = None, **summary: Any) -> dict[str, Any]:
    """A Connect JSON SIM message as DocuSign posts it (eventData restv2.1, recipients and custom fields included)."""
    data: dict[str, Any] = {"accountId": "00000000-0000-0000-0000-0000000000aa", "userId": "user-guid",
                            "envelopeId": envelope_id,
                            "envelopeSummary": {"status": summary.pop("status", "sent"), "emailSubject": "Please sign",
                                                "envelopeId": envelope_id,
                                                "recipients": {"signers": signers or []},
                                                "customFields": {"textCustomFields": [
                                                    {"fieldId": str(i), "name": k, "value": v, "show": "false",
                                                     "required": "false"}
                                                    for i, (k, v) in enumerate((custom_fields or {}).items())]},
                                                **summary}}
    if recipient_id is not None:
        data["recipientId"] = recipient_id
    return {"event": event, "apiVersion": "v2.1", "uri": f"/restapi/v2.1/accounts/x/envelopes/{envelope_id}",
            "retryCount": 0, "configurationId": 10418, "generatedDateTime": generated, "data": data}
