"""The tenant's e-signature provider (settings.provider_for(tenant, "esign")), built once per process."""

from __future__ import annotations

from sqlalchemy import Engine

from core.settings import Settings
from providers.esign.base import ESignProvider

_BUILT: dict[tuple, ESignProvider] = {}


def esign_for(settings: Settings, tenant_id: str, engine: Engine | None = None) -> ESignProvider:
    """`engine`: the CRM database, which the builtin provider keeps its signers and links in."""
    name = settings.provider_for(tenant_id, "esign")
    key = (id(settings), name) if name == "docusign" else (id(settings), name, id(engine))
    if key not in _BUILT:
        if name == "docusign":
            from providers.esign.docusign import DocuSignProvider

            _BUILT[key] = DocuSignProvider(settings, ca_certs=settings.docusign_ca_file)
        else:
            from providers.esign.builtin import BuiltinProvider

            _BUILT[key] = BuiltinProvider(settings, engine)
    return _BUILT[key]
