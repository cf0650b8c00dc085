"""A service process does not parse the system's CA bundle at start-up (aiohttp builds two
default TLS contexts as it is imported), and still verifies internal TLS peers against the
cluster's own CA (tests/integration/test_internal_tls.py runs a cluster on TLS)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from objstore.tls import skip_system_trust_store
from tests.cluster_harness import ROOT

PROBE = """
import sys
from objstore.tls import skip_system_trust_store
if sys.argv[1] == "service":
    skip_system_trust_store()
import aiohttp.connector
print(aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509"])
"""


def _certs_loaded(mode: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60, check=True)
    return int(out.stdout)


def test_a_service_loads_no_system_ca_certificates_where_a_plain_process_loads_them():
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    if _certs_loaded("plain", env) == 0:
        pytest.skip("this machine has no system CA bundle to leave unread")
    assert _certs_loaded("service", env) == 0


def test_a_ca_bundle_named_by_the_environment_is_left_as_it_is(monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", "/somewhere/ca.pem")
    skip_system_trust_store()
    assert os.environ["SSL_CERT_FILE"] == "/somewhere/ca.pem"
