"""Build the configured providers once per process (the settings validated the keys at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings import Settings
from providers.base import EmailProvider, SmsProvider
from providers.email import OutboxEmail, SendGridEmail, SmtpEmail
from providers.sms import OutboxSms, TwilioSms


@dataclass
class Providers:
    settings: Settings
    _email: dict[str, EmailProvider] = field(default_factory=dict)
    _sms: dict[str, SmsProvider] = field(default_factory=dict)

    def email(self, tenant_id: str) -> EmailProvider:
        name = self.settings.provider_for(tenant_id, "email")
        if name not in self._email:
            s = self.settings
            self._email[name] = {
                "outbox": lambda: OutboxEmail(),
                "sendgrid": lambda: SendGridEmail(s.sendgrid_api_key or "", s.sendgrid_host,
                                                  s.provider_timeout_seconds),
                "smtp": lambda: SmtpEmail(s.smtp_host or "", s.smtp_port, s.smtp_username, s.smtp_password,
                                          s.smtp_starttls, s.provider_timeout_seconds),
            }[name]()
        return self._email[name]

    def sms(self, tenant_id: str) -> SmsProvider:
        name = self.settings.provider_for(tenant_id, "sms")
        if name not in self._sms:
            s = self.settings
            self._sms[name] = {
                "outbox": lambda: OutboxSms(),
                "twilio": lambda: TwilioSms(s.twilio_account_sid or "", s.twilio_auth_token or "",
                                            messaging_service_sid=s.twilio_messaging_service_sid,
                                            from_number=s.twilio_from_number, base_url=s.twilio_base_url,
                                            timeout=s.provider_timeout_seconds),
            }[name]()
        return self._sms[name]
