"""S3 over HTTPS: a gateway started with ``--tls-cert/--tls-key`` (a certificate signed by
a CA the test makes with the openssl command) serves boto3, which verifies it against
that CA; plain HTTP to that port gets no S3 answer.
"""
from __future__ import annotations

import shutil
import ssl
import urllib.request

import boto3
import pytest
from botocore.config import Config

from objstore.config import GatewayConfig
from objstore.errors import InvalidArgument
from objstore.tls import is_loopback
from tests.cluster_harness import ExtraGateway
from tests.conftest import temporary_bucket
from tests.harness.tls import make_ca_and_cert

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_boto3_over_https_with_a_verified_certificate(cluster, tmp_path):
    """A second gateway, on TLS, beside the session cluster's own (plain HTTP) one."""
    ca, cert, key = make_ca_and_cert(tmp_path)
    verified = ssl.create_default_context(cafile=str(ca))
    with ExtraGateway(cluster, tmp_path / "gw-tls.log", ("--tls-cert", str(cert), "--tls-key", str(key)),
                      context=verified, gateway_id="gw-tls") as gw:
        s3 = boto3.client("s3", endpoint_url=gw.endpoint, verify=str(ca),
                          aws_access_key_id=cluster.access_key, aws_secret_access_key=cluster.secret_key,
                          region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        for bucket in temporary_bucket(s3):  # created, emptied and deleted over TLS
            s3.put_object(Bucket=bucket, Key="k", Body=b"over tls")
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"over tls"
        with pytest.raises(OSError):  # plain HTTP gets no S3 answer
            urllib.request.urlopen(f"http://127.0.0.1:{gw.s3_port}/health", timeout=2).read()
        assert "without TLS" not in gw.log()


def test_non_loopback_addresses_are_told_apart():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.5.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.com")


def test_tls_needs_both_certificate_and_key():
    with pytest.raises(InvalidArgument):
        GatewayConfig("gw", "s", ("127.0.0.1:1",), tls_cert="c.pem").validate()
