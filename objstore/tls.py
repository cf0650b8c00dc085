"""TLS for objstore's HTTP: the server context every service serves with, and the client
context every internal caller verifies its peers with.

Invariants: a server serves HTTPS exactly when it has a certificate and key
(``tls_cert``/``tls_key``, both or neither); an internal client speaks HTTPS exactly when it
has a CA bundle (``tls_ca``), and then verifies the peer's certificate against that bundle
and the host it dialed (addresses stay ``host:port``, so an IP address must be an IP SAN of
the certificate). Without TLS everything is plain HTTP, the default for a loopback cluster.
"""
from __future__ import annotations

import ipaddress
import os
import ssl

from objstore.errors import InvalidArgument


def skip_system_trust_store() -> None:
    """For a service process, before aiohttp is imported: no default TLS context of this
    process reads a CA bundle (``SSL_CERT_FILE`` set to an empty file, whatever the
    environment named). aiohttp builds two default contexts as it is imported, and parsing
    the bundle for them was ~150 ms of a service's start-up CPU; a service never trusts the
    system's CAs, only the cluster's own (``client_context`` names its file), and a server
    context asks no client for a certificate."""
    os.environ["SSL_CERT_FILE"] = os.devnull


def server_context(cert: str, key: str) -> ssl.SSLContext | None:
    """The server TLS context for ``cert``/``key`` (None without ``cert``); raises OSError or
    ssl.SSLError for unreadable or mismatched files."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def client_context(ca: str) -> ssl.SSLContext | None:
    """The client TLS context verifying peers against the CA bundle ``ca`` (hostname checks
    on); None without ``ca`` (plain HTTP). Raises OSError or ssl.SSLError for a bad file."""
    if not ca:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def base_url(address: str, tls: ssl.SSLContext | None) -> str:
    """``https://host:port`` with a client context, else ``http://host:port``."""
    return f"{'https' if tls is not None else 'http'}://{address}"


def request_ssl(tls: ssl.SSLContext | None) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=`` argument for a request made with ``tls`` (default checks without)."""
    return tls if tls is not None else True


def check_pair(cert: str, key: str) -> None:
    """Raise InvalidArgument unless both or neither of ``cert`` and ``key`` are given."""
    if bool(cert) != bool(key):
        raise InvalidArgument("give both tls_cert and tls_key, or neither")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (a loopback address or "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clear_text_warning(service: str, host: str, tls: ssl.SSLContext | None, traffic: str) -> str | None:
    """The warning to log when ``service`` listens on a non-loopback ``host`` without a server
    context ``tls`` (``traffic``: what then travels in clear text), else None."""
    if tls is not None or is_loopback(host):
        return None
    return f"serving {service} on {host} without TLS: {traffic} travel in clear text; give --tls-cert and --tls-key"
