"""HTTPS with --tls-cert / --tls-key: boto3 and curl against a certificate made for the
test; aws:SecureTransport is true on it; half a TLS configuration is refused."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from tests.conftest import RunningServer


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3facade test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(root)
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    server = RunningServer(root / "data", extra_args=args, ca_file=cert).start()
    yield server
    server.stop()


def test_boto3_and_curl_over_https(tls_server: RunningServer) -> None:
    assert tls_server.endpoint.startswith("https://")
    s3 = tls_server.client()
    s3.create_bucket(Bucket="secure")
    s3.put_object(Bucket="secure", Key="k", Body=b"over tls")
    assert s3.get_object(Bucket="secure", Key="k")["Body"].read() == b"over tls"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "secure", "Key": "k"})
    assert tls_server.ca_file is not None
    fetched = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(tls_server.ca_file), url],
        capture_output=True,
        timeout=30,
    )
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == b"over tls"
    plain = subprocess.run(
        ["curl", "-sS", "--max-time", "5", url.replace("https://", "http://")],
        capture_output=True,
        timeout=30,
    )
    assert b"over tls" not in plain.stdout  # no plain HTTP beside HTTPS


def test_secure_transport_is_true_over_https(tls_server: RunningServer) -> None:
    s3 = tls_server.client()
    s3.create_bucket(Bucket="insecure-denied")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::insecure-denied/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    s3.put_bucket_policy(Bucket="insecure-denied", Policy=json.dumps(policy))
    s3.put_object(Bucket="insecure-denied", Key="k", Body=b"allowed over tls")


def test_a_post_forms_location_is_https_over_https(tls_server: RunningServer) -> None:
    s3 = tls_server.client()
    s3.create_bucket(Bucket="formed")
    form = s3.generate_presigned_post(
        "formed", "up/${filename}", Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}, ["starts-with", "$key", "up/"]],
    )  # fmt: skip
    reply = requests.post(
        form["url"], data=form["fields"], files={"file": ("a b.txt", b"posted")},
        verify=str(tls_server.ca_file), timeout=30,
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    location = etree.fromstring(reply.content).findtext("{*}Location")
    assert location == f"{tls_server.endpoint}/formed/up/a%20b.txt"
    assert reply.headers["Location"] == location


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    refused = subprocess.run(
        [sys.executable, "-m", "s3facade", "serve", "--data-dir", str(tmp_path / "d"),
         "--tls-cert", str(cert)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "set both tls_cert and tls_key" in refused.stderr
