"""Internal TLS: ``objstore up --tls-dir`` (a CA and a certificate for 127.0.0.1 made with
the openssl command) runs every process on HTTPS, and every internal call verifies its peer
against the CA: boto3 PUT/GET through the gateway (which fetches the S3 secret key from the
metadata service and streams blobs to the storage nodes), Raft among three metadata nodes,
registration, the admin commands. Plain HTTP to a node, or a client trusting another CA,
gets nothing served.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import boto3
import pytest
from botocore.config import Config

from metadata.api.client import MetadataClient
from objstore.errors import ServiceUnavailable
from objstore.node.client import StorageClient
from objstore.tls import clear_text_warning, client_context, server_context
from tests.cluster_harness import ROOT, LocalCluster
from tests.harness.tls import make_ca_and_cert, needs_openssl

pytestmark = [pytest.mark.integration, needs_openssl]


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory) -> Path:
    """DIR with ca.pem, cert.pem, key.pem (``objstore up --tls-dir``) and, in DIR/other, a CA
    that did not sign them (other/ca.pem)."""
    d = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca_and_cert(d)
    shutil.copy(cert, d / "cert.pem")
    shutil.copy(key, d / "key.pem")
    (d / "other").mkdir()
    make_ca_and_cert(d / "other")
    assert ca == d / "ca.pem"
    return d


@pytest.fixture(scope="module")
def cluster(tls_dir, tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("tls-cluster") / "data", storage_nodes=3,
                      extra_args=("--tls-dir", str(tls_dir), "--metadata-nodes", "3")) as c:
        yield c


def secret_of(cluster: LocalCluster) -> str:
    return json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]


def addresses(cluster: LocalCluster, role: str) -> list[str]:
    return [p["address"] for p in cluster.processes(role)]


def test_s3_put_and_get_through_a_cluster_on_internal_tls(cluster, tls_dir):
    assert cluster.info["endpoint"] == f"https://127.0.0.1:{cluster.s3_port}"
    assert cluster.info["tls_ca"] == str((tls_dir / "ca.pem").resolve())
    s3 = boto3.client("s3", endpoint_url=cluster.info["endpoint"], verify=str(tls_dir / "ca.pem"),
                      aws_access_key_id=cluster.access_key, aws_secret_access_key=cluster.secret_key,
                      region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="tls-internal")
    body = bytes(range(256)) * 4096  # 1 MiB: streamed to three storage nodes over TLS
    s3.put_object(Bucket="tls-internal", Key="k", Body=body)
    assert s3.get_object(Bucket="tls-internal", Key="k")["Body"].read() == body
    for log in (cluster.data_dir / "logs").iterdir():
        assert "without TLS" not in log.read_text(errors="replace"), log


def test_admin_commands_use_the_ca_the_launcher_recorded(cluster):
    for argv, check in ((["status"], lambda d: len(d["nodes"]) == 3 and all(n["reachable"] for n in d["nodes"])),
                        (["metadata", "status"], lambda d: bool(d["leader"]) and len(d["members"]) == 3)):
        out = subprocess.run([sys.executable, "-m", "ops.cli", *argv, "--data-dir", str(cluster.data_dir), "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert check(json.loads(out.stdout)), out.stdout


def test_plain_http_to_a_tls_node_is_not_served(cluster):
    for address in addresses(cluster, "metadata") + addresses(cluster, "storage"):
        with pytest.raises(OSError):  # the TLS server drops a request that is not a handshake
            urllib.request.urlopen(f"http://{address}/health", timeout=5).read()

    async def plain_metadata_client() -> None:
        async with MetadataClient(addresses(cluster, "metadata"), secret_of(cluster), deadline=2.0) as meta:
            await meta.get_credential(cluster.access_key)

    with pytest.raises(ServiceUnavailable):  # the secret-fetch path has no clear-text way in
        asyncio.run(plain_metadata_client())


def test_a_client_trusting_another_ca_fails_verification(cluster, tls_dir):
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(f"https://{addresses(cluster, 'metadata')[0]}/health", timeout=5,
                               context=client_context(str(tls_dir / "other" / "ca.pem")))
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    wrong = client_context(str(tls_dir / "other" / "ca.pem"))

    async def with_wrong_ca() -> tuple[str, str]:
        async with MetadataClient(addresses(cluster, "metadata"), secret_of(cluster), deadline=2.0, tls=wrong) as meta:
            with pytest.raises(ServiceUnavailable) as meta_err:
                await meta.get_credential(cluster.access_key)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ServiceUnavailable) as storage_err:
                await StorageClient(session, secret_of(cluster), tls=wrong).stats(addresses(cluster, "storage")[0])
        return meta_err.value.message, storage_err.value.message

    meta_message, storage_message = asyncio.run(with_wrong_ca())
    assert "CERTIFICATE_VERIFY_FAILED" in meta_message
    assert "CERTIFICATE_VERIFY_FAILED" in storage_message


def test_the_right_ca_fetches_the_secret_key_over_tls(cluster, tls_dir):
    async def fetch() -> object:
        async with MetadataClient(addresses(cluster, "metadata"), secret_of(cluster), deadline=10.0,
                                  tls=client_context(str(tls_dir / "ca.pem"))) as meta:
            return await meta.get_credential(cluster.access_key)

    cred = asyncio.run(fetch())
    assert cred is not None and cred.secret_key == cluster.secret_key


def test_a_certificate_that_does_not_name_the_address_fails_verification(tmp_path):
    ca, cert, key = make_ca_and_cert(tmp_path, san="DNS:elsewhere.invalid")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def handshake() -> None:
        conn, _ = server.accept()
        with contextlib.suppress(OSError), server_context(str(cert), str(key)).wrap_socket(conn, server_side=True):
            pass

    t = threading.Thread(target=handshake, daemon=True)
    t.start()
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            with socket.create_connection(server.getsockname(), timeout=5) as sock:
                client_context(str(ca)).wrap_socket(sock, server_hostname="127.0.0.1")
    finally:
        t.join(timeout=5)
        server.close()


def test_a_node_warns_when_it_serves_a_non_loopback_address_in_clear_text():
    assert clear_text_warning("a storage node", "0.0.0.0", None, "object data")
    assert clear_text_warning("a storage node", "127.0.0.1", None, "object data") is None
    assert clear_text_warning("a storage node", "0.0.0.0", ssl.create_default_context(), "object data") is None
