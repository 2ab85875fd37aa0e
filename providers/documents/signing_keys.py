"""The certificate a tenant's documents are signed with, and the root their signatures are verified against.

Embedded (the default): on first use each tenant gets a self-signed root and a signing certificate issued by
it, kept in `<home>/signing/<tenant>/` — the folder 0700, every file 0600, written atomically like the other
state files (core/state.py). The root is what `dealflow documents verify` pins: a PDF signed by any certificate
not issued by it fails. The root's key is kept (0600) so a signing certificate can be renewed under the same
root, and documents signed before still verify.

Production: `DEALFLOW_SIGNING_PKCS12` (+ `_PASSWORD`) holds the certificate, its key and chain, for every tenant;
the pinned roots are `DEALFLOW_SIGNING_TRUST_ROOTS` (PEM) or, without it, the self-signed certificate(s) in the
PKCS#12's chain. Worker replicas on several machines must use this: each machine's embedded roots differ.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from core.settings import Settings
from core.state import FILE_MODE, private_folder, write_private

TENANT_SLUG = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
ROOT_YEARS, SIGNER_YEARS = 30, 10  # B-B signatures verify while the certificate is valid: keep it long-lived


class SigningKeyError(ValueError):
    """The signing certificate cannot be had (bad configuration, unreadable files), in one line."""


@dataclass(frozen=True)
class SigningIdentity:
    tenant_id: str
    signer: SimpleSigner
    certificate: asn1_x509.Certificate
    roots: tuple[asn1_x509.Certificate, ...]  # what verification pins
    source: str  # where it came from, for messages


def tenant_folder(settings: Settings, tenant_id: str) -> Path:
    if not TENANT_SLUG.match(tenant_id):
        raise SigningKeyError(f"tenant {tenant_id!r} is not a tenant slug (letters, digits, '-' or '_')")
    return settings.home / "signing" / tenant_id


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _name(common_name: str, tenant_id: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"tenant {tenant_id}"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dealflow")])


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, years: int, now: datetime) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=365 * years))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    usage = dict(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                 decipher_only=False)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def make_identity(tenant_id: str, *, now: datetime | None = None) -> tuple[bytes, bytes, bytes, bytes]:
    """A new self-signed root and a signing certificate under it (ECDSA P-256, SHA-256), as PEM:
    (root certificate, root key, signing certificate, signing key)."""
    now = now or datetime.now(UTC)
    root_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"Dealflow document signing root ({tenant_id})", tenant_id)
    root = _issue(root_name, root_key, root_name, root_key, ca=True, years=ROOT_YEARS, now=now)
    signer = _issue(_name(f"Dealflow documents ({tenant_id})", tenant_id), signer_key, root_name, root_key, ca=False,
                    years=SIGNER_YEARS, now=now)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    return (root.public_bytes(serialization.Encoding.PEM), key_pem(root_key),
            signer.public_bytes(serialization.Encoding.PEM), key_pem(signer_key))


FILES = ("root.pem", "root-key.pem", "signer.pem", "signer-key.pem")


@contextlib.contextmanager
def _locked(folder: Path):
    """One process makes a tenant's identity; the others wait and read it (several API processes and a worker
    may all sign the first document of a tenant at once)."""
    for path in (folder.parent.parent, folder.parent, folder):  # mkdir(parents=True) would use the umask's mode
        private_folder(path)
    with os.fdopen(os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE), "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _embedded(settings: Settings, tenant_id: str, *, create: bool) -> SigningIdentity | None:
    folder = tenant_folder(settings, tenant_id)
    if not (folder / "signer-key.pem").exists():
        if not create:
            return None
        with _locked(folder):
            if not (folder / "signer-key.pem").exists():  # made by another process while this one waited
                for name, pem in zip(FILES, make_identity(tenant_id), strict=True):
                    write_private(folder / name, pem.decode())  # the signing key last: its presence means done
    try:
        root = x509.load_pem_x509_certificate((folder / "root.pem").read_bytes())
        cert = x509.load_pem_x509_certificate((folder / "signer.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "signer-key.pem").read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read tenant {tenant_id}'s signing certificate in {folder}: {exc}") from None
    key_info = asn1_keys.PrivateKeyInfo.load(key.private_bytes(serialization.Encoding.DER,
                                                                serialization.PrivateFormat.PKCS8,
                                                                serialization.NoEncryption()))
    root_asn1, cert_asn1 = _asn1_cert(root), _asn1_cert(cert)
    signer = SimpleSigner(signing_cert=cert_asn1, signing_key=key_info,
                          cert_registry=SimpleCertificateStore.from_certs([root_asn1]))
    return SigningIdentity(tenant_id, signer, cert_asn1, (root_asn1,), f"{folder}")


def _self_signed(cert: asn1_x509.Certificate) -> bool:
    return cert.self_signed in ("maybe", "yes")


def _configured(settings: Settings, tenant_id: str) -> SigningIdentity:
    path = settings.signing_pkcs12
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"DEALFLOW_SIGNING_PKCS12: cannot read {path}: {exc.strerror}") from None
    password = settings.signing_pkcs12_password.encode() if settings.signing_pkcs12_password else None
    try:
        signer = SimpleSigner.load_pkcs12_data(data, other_certs=[], passphrase=password)
    except ValueError:
        raise SigningKeyError(f"DEALFLOW_SIGNING_PKCS12: {path} is not a PKCS#12 file this password opens "
                              "(DEALFLOW_SIGNING_PKCS12_PASSWORD)") from None
    if settings.signing_trust_roots:
        try:
            roots = tuple(load_certs_from_pemder_data(settings.signing_trust_roots.read_bytes()))
        except (OSError, ValueError) as exc:
            raise SigningKeyError(f"DEALFLOW_SIGNING_TRUST_ROOTS: cannot read {settings.signing_trust_roots}: "
                                  f"{exc}") from None
    else:
        chain = [signer.signing_cert, *signer.cert_registry]
        roots = tuple(c for c in chain if _self_signed(c))
        if not roots:
            raise SigningKeyError("DEALFLOW_SIGNING_TRUST_ROOTS is required: the PKCS#12 in DEALFLOW_SIGNING_PKCS12 "
                                  "holds no self-signed root to pin")
    return SigningIdentity(tenant_id, signer, signer.signing_cert, roots, f"{path}")


def signing_identity(settings: Settings, tenant_id: str) -> SigningIdentity:
    """The tenant's signing certificate and key: the configured PKCS#12, or the embedded one (made on first use)."""
    if settings.signing_pkcs12:
        return _configured(settings, tenant_id)
    identity = _embedded(settings, tenant_id, create=True)
    assert identity is not None
    return identity


def pinned_roots(settings: Settings, tenant_id: str) -> tuple[asn1_x509.Certificate, ...]:
    """The roots a tenant's signed PDFs must chain to. Never makes an identity: a tenant that signed nothing has
    no root, and verifying against a root made for the occasion would prove nothing."""
    if settings.signing_pkcs12:
        return _configured(settings, tenant_id).roots
    identity = _embedded(settings, tenant_id, create=False)
    if identity is None:
        raise SigningKeyError(f"tenant {tenant_id} has no signing root in {tenant_folder(settings, tenant_id)}: "
                              "it has signed no document here (is DEALFLOW_HOME the one that signed it?)")
    return identity.roots
