"""PKI for the local control plane: a CA, the apiserver's serving cert, the service-account key,
tokens."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SANS = [
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
    "10.88.0.1",
]  # the real node's bridge


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _builder(subject: str | x509.Name, issuer: str, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    if isinstance(subject, str):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_all(run: Path, token: str) -> None:
    """Write ca.crt, apiserver.{crt,key}, kubelet-client.{crt,key}, sa.key and tokens.csv (one
    system:masters user) into run."""
    ca_key = _key()
    ca_cert = (
        _builder("trtllm-local-ca", "trtllm-local-ca", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _key()
    server_cert = (
        _builder("kube-apiserver", "trtllm-local-ca", server_key.public_key())
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in SANS]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (run / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (run / "ca.key").write_bytes(_pem_key(ca_key))
    (run / "apiserver.crt").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (run / "apiserver.key").write_bytes(_pem_key(server_key))
    (run / "sa.key").write_bytes(_pem_key(_key()))
    write_kubelet_client(run, ca_key)
    (run / "tokens.csv").write_text(f'{token},admin,admin-uid,"system:masters"\n')


def write_kubelet_client(run: Path, ca_key: rsa.RSAPrivateKey) -> None:
    """The API server's client certificate towards kubelets (logs, exec, port-forward): a
    system:masters identity the real node's kubelet verifies against ca.crt."""
    key = _key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
        ]
    )
    cert = (
        _builder(name, "trtllm-local-ca", key.public_key())
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (run / "kubelet-client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (run / "kubelet-client.key").write_bytes(_pem_key(key))
