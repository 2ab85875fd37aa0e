"""An RFC 3161 timestamp authority on loopback: pyHanko's DummyTimeStamper (a real TSA signature over the request's
imprint) behind HTTP, with its own root and a TSA certificate (extended key usage timeStamping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from tests.fakes.server import FakeServer, Recorded, Reply


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                                                       "Test TSA")])


class TimestampAuthorityFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        now = datetime.now(UTC)
        root_key = ec.generate_private_key(ec.SECP256R1())
        tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # DummyTimeStamper signs RSA only
        root = (x509.CertificateBuilder().subject_name(_name("Test TSA root")).issuer_name(_name("Test TSA root"))
                .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .sign(root_key, hashes.SHA256()))
        tsa = (x509.CertificateBuilder().subject_name(_name("Test TSA")).issuer_name(root.subject)
               .public_key(tsa_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
               .sign(root_key, hashes.SHA256()))
        self.root_pem = root.public_bytes(serialization.Encoding.PEM)
        root_asn1 = asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))
        self.stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(tsa.public_bytes(serialization.Encoding.DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(tsa_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
            certs_to_embed=SimpleCertificateStore.from_certs([root_asn1]))

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("content-type") != "application/timestamp-query":
            return Reply(415, {"error": "expected application/timestamp-query"})
        response = self.stamper.request_tsa_response(tsp.TimeStampReq.load(request.body))
        return Reply(200, response.dump(), {"Content-Type": "application/timestamp-reply"})
