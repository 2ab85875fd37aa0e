"""`dealflow documents`: check a signed PDF (a final document or a certificate of completion) against a tenant's
pinned signing root."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from cli_common import console, err, load_settings

documents_app = typer.Typer(help="Signed documents: verify a PDF's signatures.", no_args_is_help=True)


@documents_app.command("verify")
def documents_verify(
    file: Path = typer.Argument(..., dir_okay=False, help="the signed PDF"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="whose signing root to check against (default: "
                                                           "DEALFLOW_DEFAULT_TENANT)"),
    as_json: bool = typer.Option(False, "--json", help="the result as JSON"),
) -> None:
    """Exit 0 when every signature is intact, valid and issued under the tenant's pinned root and nothing changed
    after the last one (printing who signed what and when); exit 1 with one line saying why otherwise."""
    from providers.documents.pades import Verification, verify_pdf
    from providers.documents.signing_keys import SigningKeyError, pinned_roots

    # pyHanko logs a traceback for every certificate it cannot chain: the one line below says it
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    settings = load_settings()
    tenant = tenant or settings.default_tenant

    def fail(problem: str) -> None:
        if as_json:
            print(json.dumps({"ok": False, "file": str(file), "tenant": tenant, "problem": problem}))
        else:
            err.print(f"FAILED {file}: {problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)

    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read it: {exc.strerror}")
    try:
        roots = pinned_roots(settings, tenant)
        timestamp_roots = ()
        if settings.signing_timestamp_roots:
            from pyhanko.keys import load_certs_from_pemder_data

            timestamp_roots = tuple(load_certs_from_pemder_data(settings.signing_timestamp_roots.read_bytes()))
    except (SigningKeyError, OSError, ValueError) as exc:
        fail(str(exc))
    result: Verification = verify_pdf(data, roots, timestamp_roots)
    if not result.ok:
        fail(result.problem or "not valid")
    if as_json:
        print(json.dumps({"ok": True, "file": str(file), "tenant": tenant, "title": result.title,
                          "sha256": result.sha256, "signatures": [
                              {"field": s.field, "signer": s.signer, "reason": s.reason, "timestamped": s.timestamped,
                               "signed_at": s.signed_at.isoformat() if s.signed_at else None}
                              for s in result.signatures]}))
        return
    console.print(result.summary(str(file)), markup=False, highlight=False, soft_wrap=True)
