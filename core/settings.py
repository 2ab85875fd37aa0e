"""The one settings object. Every value can be set with a DEALFLOW_ environment variable."""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from decimal import Decimal
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


MIN_SECRET_KEY_LENGTH = 32  # the old default "dev-only-change-me" and the usual "changeme"s are shorter


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALFLOW_", env_file=".env", extra="ignore")

    # Where embedded state lives (.dealflow/ next to the working directory by default).
    home: Path = Path(".dealflow")

    # CRM database. Empty means the embedded SQLite file under `home`.
    database_url: str = ""

    # Temporal. Empty address means `dealflow up` starts the embedded dev server.
    temporal_address: str = ""
    temporal_namespace: str = "default"
    temporal_task_queue: str = "dealflow"
    temporal_api_key: str | None = None  # Temporal Cloud API key
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None  # mTLS client certificate (PEM)
    temporal_tls_key: Path | None = None
    embedded_temporal_port: int = 7233
    embedded_temporal_ui_port: int = 8233

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # `dealflow up`: API processes sharing one listening socket (each supervised and restarted on its own). Two
    # on a 2-core machine: one Python process tops out near 150 lead intakes/s (docs/benchmarks.md).
    # Workflow tasks the worker runs at once. They share one Python process (the GIL): more than the cores can
    # run only queue inside the worker, where the server's 10 s workflow-task timeout keeps ticking (tasks were
    # timed out and redone under load); left on the server they wait with no clock running.
    worker_workflow_tasks: int = Field(default_factory=lambda: max(8, 4 * (os.cpu_count() or 1)), ge=1, le=1000)
    api_processes: int = Field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)), ge=1, le=32)
    # Public base URL (used in links and by providers' signature checks behind a proxy).
    public_url: str = ""
    # The proxies whose X-Forwarded-For / X-Forwarded-Proto the API believes (uvicorn's forwarded_allow_ips: a
    # comma-separated list of addresses or networks, "*" for any). The client's address is what the per-address
    # sign-in limit counts: behind a proxy not listed here every person would share the proxy's address.
    forwarded_allow_ips: str = Field(default="127.0.0.1", max_length=2000)

    log_level: str = "INFO"
    # auto: readable and coloured on a terminal (Rich), JSON lines otherwise; json or text to force one.
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")

    default_tenant: str = "demo"
    default_region: str = "US"  # phone numbers without a country code are read in this region
    # Signs links sent to recipients (unsubscribe): at least 32 characters. `dealflow up` makes one in
    # <home>/secret-key when none is set; everything else refuses to start without one (check_secret_key).
    secret_key: str = ""

    # Messaging providers: "outbox" (embedded: stored and shown by the API, nothing leaves the machine),
    # "sendgrid"/"smtp" for email, "twilio" for SMS. Per-tenant overrides, e.g.
    # DEALFLOW_TENANT_PROVIDERS='{"acme": {"email": "sendgrid", "sms": "twilio"}}'.
    email_provider: str = Field(default="outbox", pattern="^(outbox|sendgrid|smtp)$")
    sms_provider: str = Field(default="outbox", pattern="^(outbox|twilio)$")
    # E-signature: "builtin" (the API's own signing page; links go out through the email provider) or
    # "docusign" (the docusign-esign SDK with JWT auth; events come back on DocuSign Connect). Per tenant as the
    # "esign" channel of tenant_providers.
    esign_provider: str = Field(default="builtin", pattern="^(builtin|docusign)$")
    tenant_providers: dict[str, dict[str, str]] = Field(default_factory=dict)
    email_from: str = "Dealflow <no-reply@dealflow.local>"
    sendgrid_api_key: str | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None  # "Signed Event Webhook" verification key
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    # SendGrid Inbound Parse has no signature: its destination URL carries HTTP Basic credentials
    # (https://sendgrid:<password>@host/api/v1/webhooks/sendgrid/inbound), checked against this password
    sendgrid_inbound_password: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    provider_timeout_seconds: float = 15.0
    # Enrichment: an optional property-data HTTP API (the tenant's parcel CSV is always used).
    property_api_url: str | None = None
    property_api_key: str | None = None
    # Scoring: model files live here (metadata in the scoring_models table). Default: <home>/models.
    models_dir: Path | None = None
    # Drift (scoring/drift.py, docs/scoring.md#drift): a feature's or the score's population stability index (PSI)
    # between the active model's training data and the inputs of the leads scored in the last `drift_window_days`
    # (the deal models': of the deals created in them); above `drift_psi_threshold` it is drifted (the ModelDrift and
    # DealModelDrift alerts; `dealflow scoring drift --retrain`).
    # Conventional reading: under 0.1 no shift, 0.1-0.25 moderate, over 0.25 significant.
    drift_psi_threshold: float = Field(default=0.25, gt=0, le=10)
    drift_window_days: int = Field(default=30, ge=1, le=365)
    # Each tenant's drift report is computed by ScoringDriftWorkflow on a Schedule of its own (scoring-drift-{tenant})
    # every this many hours, in the worker, which sets the drift gauges it serves; when the report is significant
    # and `scoring_retrain_on_drift` is on, it retrains the lead model (the promotion rule still decides).
    drift_check_every_hours: int = Field(default=24, ge=1, le=24 * 30)
    scoring_retrain_on_drift: bool = True
    # Retraining (services/retraining.py): each tenant's lead model is retrained by a Temporal Schedule every this
    # many days; a candidate replaces the active model only when its AUC on the leads closed after its training
    # cut-off is higher by the margin (and its Brier score no worse).
    scoring_retrain_every_days: int = Field(default=7, ge=1, le=365)
    scoring_promotion_margin: float = Field(default=0.005, ge=0, le=0.5)
    # The deal models (services/deal_retraining.py) are retrained on the same Schedule interval, one Schedule of their
    # own per tenant: a candidate replaces the active version only when the pinball loss of its profit and of its ROI
    # quantiles, on the deals closed after its cut-off, are both lower by this share of the active version's (0.02:
    # 2 % lower), and its time-to-close concordance is no lower than the active version's less the tolerance.
    scoring_deal_pinball_margin: float = Field(default=0.02, ge=0, lt=1)
    scoring_deal_concordance_tolerance: float = Field(default=0.0, ge=0, le=0.5)
    # Deal forecasts (scoring/deal_forecast.py): a tenant's own expected-return and time-to-close models replace the
    # cold-start ones (trained on the synthetic deal book) at the first retraining (its Schedule, or `dealflow scoring
    # retrain --model deal`) that finds this many closed-won deals with their figures (a contract price, and a sale
    # price with repairs or an assignment fee); a forecast request only reads the active version.
    deal_forecast_min_closed: int = Field(default=30, ge=10, le=1_000_000)
    # Reply intent (scoring/intent.py): an optional LLM behind the same interface as the shipped text model, any
    # OpenAI-compatible chat-completions API (e.g. https://api.openai.com/v1, a local vLLM or Ollama); off when
    # the URL is empty. A failed or unreadable answer falls back to the text model.
    intent_llm_url: str | None = None
    intent_llm_model: str = "gpt-4o-mini"
    intent_llm_api_key: str | None = None
    intent_llm_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Lead-source webhooks (POST /api/v1/webhooks/leads/{source}), signed the Standard Webhooks way; secrets e.g.
    # DEALFLOW_LEAD_SOURCE_SECRETS='{"acme": {"zapier": "whsec_..."}}' (tenant -> source -> secret).
    # DocuSign (esign provider "docusign"): the app's integration key, the user it acts for (JWT grant), the
    # account, and the RSA private key (PEM text, or a path to one). The REST base is the account's base URI.
    docusign_integration_key: str | None = None
    docusign_user_id: str | None = None
    docusign_account_id: str | None = None
    docusign_private_key: str | None = None
    docusign_oauth_host: str = "account-d.docusign.com"  # account.docusign.com in production
    docusign_base_url: str = "https://demo.docusign.net/restapi"
    docusign_ca_file: str | None = None  # a CA bundle for DocuSign's TLS (default: certifi's; tests: the fake's)
    # Connect's HMAC keys (any may match: DocuSign signs with every active key, X-DocuSign-Signature-1..N)
    docusign_connect_hmac_keys: list[str] = Field(default_factory=list)
    # How long each accreditation method counts, in days (a third-party letter: 90), and how many days before the
    # end AccreditationWorkflow reminds the investor (through investor definitions on accreditation.expiring) and
    # the owner.
    accreditation_valid_days: dict[str, int] = Field(default_factory=lambda: {
        "self_certification": 365, "income": 90, "net_worth": 90, "third_party_letter": 90,
        "minimum_investment": 365})
    accreditation_reminder_days: list[int] = Field(default_factory=lambda: [30, 7])
    # Rule 506(c)'s minimum-investment method (the SEC staff's March 2023 no-action letter): a verification that
    # rests on it holds only for a commitment of at least this much — a natural person's (individual, joint, IRA)
    # or an entity's (LLC, trust) — with the investor's written representations on file.
    minimum_investment_person: Decimal = Field(default=Decimal(200_000), ge=0, le=Decimal("1e12"))
    minimum_investment_entity: Decimal = Field(default=Decimal(1_000_000), ge=0, le=Decimal("1e12"))

    @field_validator("accreditation_valid_days")
    @classmethod
    def _every_method_has_a_window(cls, value: dict[str, int]) -> dict[str, int]:
        """An override names the methods it changes; the others keep their default windows."""
        defaults = {"self_certification": 365, "income": 90, "net_worth": 90, "third_party_letter": 90,
                    "minimum_investment": 365}
        unknown = set(value) - set(defaults)
        if unknown:
            raise ValueError(f"unknown accreditation method(s) {sorted(unknown)} (methods: {', '.join(defaults)})")
        if any(days < 1 for days in value.values()):
            raise ValueError("an accreditation window is at least one day")
        return {**defaults, **value}
    lead_source_secrets: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Signed webhooks older than this are refused as replays (0 disables the check).
    webhook_max_age_seconds: int = 600
    # Hosts a definition's http_call may reach (exact host, or its subdomains), e.g.
    # DEALFLOW_HTTP_CALL_HOSTS='["hooks.zapier.com", "127.0.0.1"]'. Empty (the default): http_call is refused.
    http_call_hosts: list[str] = Field(default_factory=list)
    # The event relay in the worker (events/relay.py): how often an idle relay looks for new events, how many
    # subjects it delivers at once, and after how many failures an event is parked for staff.
    relay_enabled: bool = True
    relay_poll_seconds: float = Field(default=0.2, gt=0, le=60)
    relay_concurrency: int = Field(default=16, ge=1, le=128)
    relay_max_attempts: int = Field(default=5, ge=1, le=100)
    # Tests only: the relay waits between its Temporal calls and the commit of `delivered_at` while this file
    # exists, so a test can kill the worker at the worst moment.
    relay_hold_file: Path | None = None

    # Input limits (issue 10): past them a request is refused with a 4xx naming the limit, before anything is
    # stored. A body larger than max_body_bytes is a 413; free-form JSON (a lead's custom, an event's data)
    # deeper or larger than the json_ limits, a definition larger or deeper than the definition_ ones, and a
    # rendered message longer than message_max_chars are 422s.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # SendGrid's Inbound Parse posts a reply with its attachments (up to 30 MB); only its text is kept
    inbound_email_max_bytes: int = Field(default=31_457_280, ge=1024)
    json_max_depth: int = Field(default=16, ge=2, le=100)
    json_max_bytes: int = Field(default=65_536, ge=256)
    definition_max_bytes: int = Field(default=262_144, ge=1024)
    definition_max_depth: int = Field(default=32, ge=4, le=200)
    message_max_chars: int = Field(default=100_000, ge=160)
    # The definition dry run ("Test"): each starts a time-skipping test server of its own; at most this many at
    # once per API process (more get a 429), each stopped after this many seconds of real time.
    dry_run_concurrency: int = Field(default=2, ge=1, le=16)
    dry_run_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    # Security defaults (issue 10). Old secret keys still accepted on signed links after a rotation (sign with
    # secret_key, verify with it or these); how long an unsubscribe link works (CAN-SPAM asks for 30 days after
    # the send); until when links signed by hand before itsdangerous are still honoured (they carry no date).
    secret_key_fallbacks: list[str] = Field(default_factory=list)
    unsubscribe_link_max_age_days: int = Field(default=60, ge=30, le=3650)
    legacy_links_until: date = date(2027, 2, 1)

    # The staff console (/app): how long a signed-in session lasts (absolute, not extended by use), how long a mailed
    # sign-in link works, and the sign-in rate limit: failed tries per email (per kind: password, link) and per
    # address within the window; past either, tries are refused with a 429 until the window has moved on.
    console_session_hours: int = Field(default=12, ge=1, le=24 * 30)
    sign_in_link_minutes: int = Field(default=15, ge=1, le=24 * 60)
    sign_in_window_seconds: int = Field(default=900, ge=10, le=86_400)
    sign_in_max_failures: int = Field(default=5, ge=1, le=1000)
    sign_in_max_failures_per_ip: int = Field(default=30, ge=1, le=100_000)

    # Document signing (issue 11): the final signed PDFs and certificates of completion are PAdES-signed. Embedded
    # default: each tenant's own self-signed root and signing certificate, made on first use in
    # <home>/signing/<tenant>/ (0600). Production: one PKCS#12 (certificate, key and chain) for every tenant, with
    # the root(s) verification pins (default: the self-signed certificate in the PKCS#12's chain); and a timestamp
    # authority (RFC 3161) to make the signatures PAdES B-T, with the roots its tokens are checked against.
    signing_pkcs12: Path | None = None
    signing_pkcs12_password: str | None = None
    signing_trust_roots: Path | None = None
    signing_timestamp_url: str | None = None
    signing_timestamp_roots: Path | None = None

    # Telemetry (issue 10). Metrics are served on their own bind address, never the API's port: Dealflow's own
    # (prometheus-client) on metrics_address — by `dealflow api` and `dealflow worker`, or by `dealflow up` alone
    # for all its processes — and the Temporal SDK's (the worker's Runtime) on temporal_metrics_address. Empty
    # turns one off. Traces: none (the default; trace ids still reach the logs and the outbox), otlp (to
    # OTEL_EXPORTER_OTLP_ENDPOINT, OpenTelemetry's own variable, default http://localhost:4318) or console.
    metrics_address: str = "127.0.0.1:9464"
    temporal_metrics_address: str = "127.0.0.1:9465"
    otel_exporter: str = Field(default="none", pattern="^(none|otlp|console)$")
    otel_service_name: str = "dealflow"

    @field_validator("metrics_address", "temporal_metrics_address")
    @classmethod
    def _check_metrics_address(cls, value: str) -> str:
        value = value.strip()
        host, _, port = value.rpartition(":")
        if value and (not host or "://" in value or not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError("must be host:port, e.g. 127.0.0.1:9464 (empty turns it off)")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        # Heroku/compose style URLs mean psycopg 3 here.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix):]
        allowed = ("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")
        if not value.startswith(allowed):
            raise ValueError(
                f"unsupported database URL scheme in {value.split('://')[0]!r}: "
                "use postgresql+psycopg://... or sqlite:///path"
            )
        return value

    @field_validator("temporal_address")
    @classmethod
    def _check_temporal_address(cls, value: str) -> str:
        value = value.strip()
        if value and ("://" in value or ":" not in value):
            raise ValueError("temporal address must be host:port, e.g. 127.0.0.1:7233")
        return value

    @field_validator("signing_timestamp_url")
    @classmethod
    def _check_timestamp_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("the timestamp authority's URL must start with http:// or https:// (RFC 3161 over HTTP)")
        return value or None

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("public URL must start with http:// or https://")
        return value

    def provider_for(self, tenant_id: str, channel: str) -> str:
        """The provider name for a tenant's channel ("email", "sms" or "esign")."""
        default = {"email": self.email_provider, "sms": self.sms_provider, "esign": self.esign_provider}[channel]
        return self.tenant_providers.get(tenant_id, {}).get(channel, default)

    @model_validator(mode="after")
    def _providers_are_configured(self) -> Settings:
        """A missing key is a start-up error naming the variable, not a failure at send time."""
        needs = {
            "sendgrid": ["sendgrid_api_key"],
            "smtp": ["smtp_host"],
            "twilio": ["twilio_account_sid", "twilio_auth_token"],
            "docusign": ["docusign_integration_key", "docusign_user_id", "docusign_account_id",
                         "docusign_private_key"],
        }
        chosen = {("email", self.email_provider, "default"), ("sms", self.sms_provider, "default"),
                  ("esign", self.esign_provider, "default")}
        allowed_by_channel = {"email": ("outbox", "sendgrid", "smtp"), "sms": ("outbox", "twilio"),
                              "esign": ("builtin", "docusign")}
        for tenant, channels in self.tenant_providers.items():
            for channel, provider in channels.items():
                if channel not in allowed_by_channel:
                    raise ValueError(f"tenant_providers[{tenant!r}]: unknown channel {channel!r} "
                                     "(email, sms or esign)")
                allowed = allowed_by_channel[channel]
                if provider not in allowed:
                    raise ValueError(f"tenant_providers[{tenant!r}][{channel!r}]: {provider!r} is not one of "
                                     f"{', '.join(allowed)}")
                chosen.add((channel, provider, f"tenant {tenant}"))
        for channel, provider, who in sorted(chosen):
            for field in needs.get(provider, []):
                if not getattr(self, field):
                    raise ValueError(f"DEALFLOW_{field.upper()} is required: {channel} provider {provider!r} "
                                     f"is selected ({who})")
        if "twilio" in {p for _, p, _ in chosen} and not (self.twilio_messaging_service_sid or
                                                         self.twilio_from_number):
            raise ValueError("DEALFLOW_TWILIO_MESSAGING_SERVICE_SID or DEALFLOW_TWILIO_FROM_NUMBER is required "
                             "when SMS goes through Twilio")
        return self

    def check_secret_key(self) -> None:
        """A server (API, worker) signs links with the key: a missing, default or short one is a one-line error."""
        if not self.secret_key:
            raise ConfigError("DEALFLOW_SECRET_KEY is not set: set it to a random value of at least "
                              f"{MIN_SECRET_KEY_LENGTH} characters (e.g. `openssl rand -hex 32`); `dealflow up` "
                              "makes one by itself")
        if len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(f"DEALFLOW_SECRET_KEY is too short ({len(self.secret_key)} characters): use a random "
                              f"value of at least {MIN_SECRET_KEY_LENGTH} (e.g. `openssl rand -hex 32`)")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'crm.db').resolve()}"

    @property
    def effective_models_dir(self) -> Path:
        return (self.models_dir or self.home / "models").resolve()

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.embedded_temporal_port}"

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"


class ConfigError(ValueError):
    """Bad configuration, said in one line naming the variables."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = "DEALFLOW_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
