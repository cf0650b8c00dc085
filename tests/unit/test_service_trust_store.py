"""A service process does not parse a CA bundle at start-up (aiohttp builds two default TLS
contexts as it is imported), whatever bundle the environment names; internal TLS still
verifies peers against the cluster's own CA (tests/integration/test_internal_tls.py runs a
cluster on TLS)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import botocore

from tests.cluster_harness import ROOT

PROBE = """
import sys
from objstore.tls import skip_system_trust_store
if sys.argv[1] == "service":
    skip_system_trust_store()
import aiohttp.connector
print(aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509"])
"""
# A CA bundle present wherever the tests' dependencies are installed (botocore ships one).
BUNDLE = Path(botocore.__file__).parent / "cacert.pem"


def _certs_loaded(mode: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60, check=True)
    return int(out.stdout)


def test_a_service_loads_no_ca_certificates_where_a_plain_process_loads_the_named_bundle():
    env = {**os.environ, "SSL_CERT_FILE": str(BUNDLE)}
    assert _certs_loaded("plain", env) > 0
    assert _certs_loaded("service", env) == 0


def test_a_service_loads_no_ca_certificates_from_the_systems_default_bundle():
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    assert _certs_loaded("service", env) == 0
