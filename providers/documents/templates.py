"""Document templates (Jinja2, HTML that fpdf2 lays out) and the one rule that matters before anything is sent:
every value a template uses must be there. A missing value — or one that is None — is not printed as an empty
blank in a contract: rendering fails with `MissingValues` naming every one of them (`deal.contract_price`,
`terms.closing_date`), and nothing is made.

Optional parts of a template say so with `is defined` (`{% if property.unit is defined %}`) or `|default(...)`.
The environment is Jinja's sandbox with autoescaping, so a seller named `<b>Bob</b>` is printed as typed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, FileSystemLoader, TemplateError, Undefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class SignerRole:
    role: str  # the anchor's name: /sig_<role>/, /date_<role>/ (DocuSign anchor tabs; the built-in page)
    party: str  # who signs in that role: seller, investor or tenant (the tenant's signatory)
    label: str


@dataclass(frozen=True)
class DocumentKind:
    key: str
    title: str
    file: str
    signers: tuple[SignerRole, ...]
    parties: tuple[str, ...]  # the context parts the template is about (besides tenant, document, terms)


_SELLER, _BUYER = SignerRole("seller", "seller", "Seller"), SignerRole("buyer", "tenant", "Buyer")
KINDS: dict[str, DocumentKind] = {kind.key: kind for kind in (
    DocumentKind("letter_of_intent", "Letter of Intent to Purchase", "letter_of_intent.html.j2",
                 (_BUYER, _SELLER), ("deal", "property", "seller")),
    DocumentKind("purchase_agreement", "Purchase and Sale Agreement", "purchase_agreement.html.j2",
                 (_SELLER, _BUYER), ("deal", "property", "seller")),
    DocumentKind("assignment_of_contract", "Assignment of Contract", "assignment_of_contract.html.j2",
                 (SignerRole("assignor", "tenant", "Assignor"), SignerRole("assignee", "investor", "Assignee")),
                 ("deal", "property", "seller", "investor")),
    DocumentKind("nda", "Mutual Non-Disclosure Agreement", "nda.html.j2",
                 (SignerRole("company", "tenant", "Company"), SignerRole("recipient", "investor", "Recipient")),
                 ("investor",)),
    DocumentKind("subscription_agreement", "Subscription Agreement", "subscription_agreement.html.j2",
                 (SignerRole("subscriber", "investor", "Subscriber"), SignerRole("issuer", "tenant", "Issuer")),
                 ("investor",)),
)}


class UnknownTemplate(LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"unknown document template {key!r} (templates: {', '.join(KINDS)})")
        self.key = key


class MissingValues(ValueError):
    """The template uses values the context does not have (or has as None); `missing` names each one."""

    def __init__(self, kind: str, missing: list[str]) -> None:
        super().__init__(f"{kind} cannot be rendered: missing {', '.join(missing)}")
        self.kind, self.missing = kind, missing


class RenderFailed(ValueError):
    """The template itself is broken (syntax, a filter on the wrong type): a bug in the template, said plainly."""


class Values:
    """A read-only mapping that knows its dotted path, so a missing key is named in full (`terms.closing_date`).
    Not a dict: `terms.items` must be the value called items, never dict.items."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self._data = {k: _wrap(v, f"{path}.{k}") for k, v in data.items() if v is not None}
        self._path = path

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __repr__(self) -> str:
        return f"Values({self._path})"


def _wrap(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return Values(value, path)
    if isinstance(value, list | tuple):
        return [_wrap(v, f"{path}.{i}") for i, v in enumerate(value) if v is not None]
    return value


_missing: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("dealflow_missing_values", default=None)


class _Missing(ChainableUndefined):
    """Undefined that, when printed, iterated, tested or computed with, records its full name and stands in as
    nothing, so one rendering finds every missing value; `is defined` and `|default` do not count as use."""

    __slots__ = ()

    def _name(self) -> str:
        owner = self._undefined_obj
        base = owner._path if isinstance(owner, Values) else None
        name = self._undefined_name or "?"
        return f"{base}.{name}" if base else name

    def _record(self) -> None:
        found = _missing.get()
        if found is not None and self._name() not in found:
            found.append(self._name())

    @property
    def _undefined_message(self) -> str:  # arithmetic and comparisons raise with it: record first
        self._record()
        return f"missing {self._name()}"

    def __str__(self) -> str:
        self._record()
        return ""

    def __html__(self) -> str:
        return str(self)

    def __iter__(self):
        self._record()
        return iter(())

    def __bool__(self) -> bool:
        self._record()
        return False

    def __len__(self) -> int:
        self._record()
        return 0


def _money(value: Any) -> str:
    if isinstance(value, Undefined):
        return str(value)
    amount = Decimal(str(value))
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _long_date(value: Any) -> str:
    if isinstance(value, Undefined):
        return str(value)
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    return f"{value:%B} {value.day}, {value.year}"


def _percent(value: Any) -> str:
    if isinstance(value, Undefined):
        return str(value)
    return f"{(Decimal(str(value)) * 100).normalize():f} %"


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=FileSystemLoader(TEMPLATE_DIR), undefined=_Missing, autoescape=True,
                               trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=_money, long_date=_long_date, percent=_percent)
    return env


_env = _environment()


def kind(key: str) -> DocumentKind:
    try:
        return KINDS[key]
    except KeyError:
        raise UnknownTemplate(key) from None


def render_html(key: str, context: Mapping[str, Any]) -> str:
    """The document's HTML. Raises MissingValues naming every value the template needs and the context lacks."""
    document_kind = kind(key)
    values = {name: _wrap(value, name) for name, value in context.items() if value is not None}
    values["kind"] = {"key": document_kind.key, "title": document_kind.title}
    values["signers"] = [{"role": s.role, "party": s.party, "label": s.label} for s in document_kind.signers]
    found: list[str] = []
    token = _missing.set(found)
    try:
        html = _env.get_template(document_kind.file).render(values)
    except UndefinedError:
        html = ""  # a missing value used in arithmetic or a comparison: recorded, reported below
    except TemplateError as exc:
        raise RenderFailed(f"{key}: {exc}") from None
    except (ArithmeticError, TypeError, ValueError) as exc:
        if found:  # e.g. a filter fed by a missing value
            raise MissingValues(key, found) from None
        raise RenderFailed(f"{key}: {exc}") from None
    finally:
        _missing.reset(token)
    if found:
        raise MissingValues(key, found)
    return html
