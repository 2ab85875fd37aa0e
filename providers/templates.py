"""Message templates: Jinja2 in a sandbox, strict about missing variables, with SMS segment counts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from ruamel.yaml import YAML
from sqlmodel import Session, col, select

from core.settings import get_settings
from models.message import MessageTemplate

BUILTIN_FILE = Path(__file__).with_name("message_templates.yaml")
VARIABLES = {"lead", "property", "tenant", "sender", "unsubscribe_url", "deal", "investor", "user", "notification"}

# A realistic context every template must render against before it is accepted.
SAMPLE_CONTEXT: dict[str, Any] = {
    "lead": {"id": "ld_sample", "first_name": "Maria", "last_name": "Garcia", "email": "maria@example.com",
             "phone": "+15125550142", "source": "web_form", "status": "new", "tags": ["vacant"],
             "property_address": "4500 Oak Ridge Dr, Austin, TX 78731"},
    "property": {"street": "4500 Oak Ridge Dr", "unit": None, "city": "Austin", "state": "TX", "zip": "78731"},
    "investor": {"id": "iv_sample", "name": "Dana Whitfield", "first_name": "Dana", "company": "Whitfield Capital",
                 "email": "dana@example.com", "phone": "+15125550177", "status": "prospect", "tags": ["lender"]},
    "user": {"id": "us_sample", "name": "Sam Rivera", "first_name": "Sam", "email": "sam@example.com",
             "role": "staff", "team": "acquisitions"},
    "notification": {"id": "nt_sample", "kind": "task.assigned", "title": "Task for you: Call now",
                     "body": "Call now — Maria Garcia, due 2026-06-01 15:00 UTC."},
    "deal": {"id": "op_sample", "title": "4500 Oak Ridge Dr", "city": "Austin", "state": "TX", "price": "285,000",
             "minimum_investment": "50,000", "target_raise": "200,000"},
    "tenant": {"id": "demo", "name": "Lone Star Home Buyers"},
    "sender": {"name": "Sam"},
    "unsubscribe_url": "https://example.com/u/sample",
}

MAX_RENDERED = 100_000  # characters of one rendered part; the settings' message_max_chars when lower


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus bounds on what an expression may build: `'a' * 10**7` made a 10 MB message that was
    "sent", `10 ** 10**6` a number that takes seconds to compute (the sandbox bounds `range` itself)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_RENDERED:
                    raise SecurityError(f"a repeated text of more than {MAX_RENDERED:,} characters")
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("an exponent above 64")
        return super().call_binop(context, operator, left, right)


_text = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_html = _Sandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)


def _render(env: SandboxedEnvironment, source: str, context: dict[str, Any], part: str) -> str:
    """One part, rendered; every failure is a TemplateError (the sandbox's own `range` bound raises
    OverflowError), and so is a result longer than the limit."""
    try:
        out = env.from_string(source).render(context)
    except TemplateError:
        raise
    except (ArithmeticError, TypeError, ValueError, RecursionError, MemoryError) as exc:
        raise TemplateError(f"{part}: {exc}") from None
    limit = min(MAX_RENDERED, get_settings().message_max_chars)
    if len(out) > limit:
        raise TemplateError(f"{part} renders to {len(out):,} characters, more than the {limit:,} allowed")
    return out

GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
           "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Template:
    key: str
    version: int
    channel: str  # email or sms
    text: str
    subject: str | None = None
    html: str | None = None
    builtin: bool = False


@dataclass(frozen=True)
class Rendered:
    text: str
    subject: str | None = None
    html: str | None = None


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM-7 or UCS-2
    characters: int
    segments: int


class TemplateInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def sms_segments(body: str) -> Segments:
    """How carriers will split an SMS: GSM-7 (160, or 153 per part) or UCS-2 (70, or 67 per part)."""
    if all(ch in GSM7 or ch in GSM7_EXTENDED for ch in body):
        units = len(body) + sum(ch in GSM7_EXTENDED for ch in body)
        return Segments("GSM-7", units, 1 if units <= 160 else math.ceil(units / 153))
    units = len(body.encode("utf-16-le")) // 2
    return Segments("UCS-2", units, 1 if units <= 70 else math.ceil(units / 67))


@lru_cache
def builtin_templates() -> dict[str, Template]:
    data = YAML(typ="safe").load(BUILTIN_FILE.read_text())
    return {key: Template(key=key, version=int(t["version"]), channel=t["channel"], text=t["text"],
                          subject=t.get("subject"), html=t.get("html"), builtin=True) for key, t in data.items()}


def validate(template: Template) -> dict[str, Any]:
    """Compile and render against SAMPLE_CONTEXT. Raises TemplateInvalid listing every problem."""
    errors: list[dict[str, str]] = []
    if template.channel not in ("email", "sms"):
        errors.append({"field": "channel", "message": "must be email or sms"})
    if template.channel == "email" and not template.subject:
        errors.append({"field": "subject", "message": "an email template needs a subject"})
    if template.channel == "sms" and (template.subject or template.html):
        errors.append({"field": "subject", "message": "an SMS template has only text"})
    parts = {"text": template.text, "subject": template.subject, "html": template.html}
    for field, source in parts.items():
        if not source:
            continue
        env = _html if field == "html" else _text
        try:
            unknown = meta.find_undeclared_variables(env.parse(source)) - VARIABLES
            if unknown:
                errors.append({"field": field, "message": f"unknown variable(s): {', '.join(sorted(unknown))} "
                                                         f"(known: {', '.join(sorted(VARIABLES))})"})
                continue
            _render(env, source, SAMPLE_CONTEXT, field)
        except TemplateError as exc:
            where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            errors.append({"field": field, "message": f"{exc.message or exc}{where}"})
    if errors:
        raise TemplateInvalid(errors)
    report: dict[str, Any] = {}
    if template.channel == "sms":
        sample = render(template, SAMPLE_CONTEXT)
        report["sample"] = sample.text
        report["segments"] = sms_segments(sample.text).__dict__
    return report


def render(template: Template, context: dict[str, Any]) -> Rendered:
    """Render for a real recipient. A missing variable raises TemplateError: it never sends as ''."""
    text = _render(_text, template.text, context, "text").strip()
    subject = _render(_text, template.subject, context, "subject").strip() if template.subject else None
    if subject:  # a header: a CR or LF from a name stored before names were checked must not start a new one
        subject = " ".join(subject.splitlines())
    html = _render(_html, template.html, context, "html") if template.html else None
    return Rendered(text=text, subject=subject, html=html)


# What a one-off send (a staff message, a reply from the inbox) puts in a template's context besides the tenant, the
# sender and the unsubscribe link: a lead's send has the lead and its property; an investor's, the investor.
ONE_OFF_CONTEXT = {"lead": {"lead", "property"}, "investor": {"investor"}}
_SITUATIONAL = {"lead", "property", "investor", "user", "notification", "deal", "sign_in"}


def audiences(template: Template) -> list[str]:
    """Whom a one-off send of this template can go to ("lead", "investor"): those whose send gives it every
    variable it names about a person or a situation. A deal blast (it names `deal`) or a staff notification goes to
    nobody one-off; a template that names none of them, to either."""
    return list(_audiences(template.text, template.subject, template.html))


@lru_cache(maxsize=512)
def _audiences(*parts: str | None) -> tuple[str, ...]:
    named: set[str] = set()
    for part in parts:
        if part:
            try:
                named |= meta.find_undeclared_variables(_text.parse(part)) & _SITUATIONAL
            except TemplateError:
                return ()
    return tuple(kind for kind, given in ONE_OFF_CONTEXT.items() if named <= given)


def latest_template(session: Session, tenant_id: str, key: str) -> Template | None:
    row = session.exec(select(MessageTemplate).where(MessageTemplate.tenant_id == tenant_id,
                                                     MessageTemplate.key == key)
                       .order_by(col(MessageTemplate.version).desc())).first()
    if row:
        return Template(key=row.key, version=row.version, channel=row.channel, text=row.text,
                        subject=row.subject, html=row.html)
    return builtin_templates().get(key)
