"""Which metadata calls a node's lean HTTP front serves (:mod:`metadata.hot_routes`).

Shared by the server, which serves these through the front, and the client, which sends
only these on its pooled keep-alive connections (:mod:`objstore.internal_http`): the front
hands a connection that brings any other call to aiohttp's server for good, so one listing
sent on a pooled connection would put every later command on it through aiohttp's far
costlier request path.
"""
from __future__ import annotations

from objstore.node.hot_front import HOT_BODY_LIMIT

# (method, path) -> the route's name (its metrics op)
HOT_PATHS: dict[tuple[str, str], str] = {
    ("GET", "/v1/object"): "get_object",
    ("POST", "/v1/objects"): "get_objects",  # concurrent lookups of one client (metadata.lookup_batch_http)
    ("GET", "/v1/bucket"): "get_bucket",
    ("GET", "/v1/credential"): "get_credential",
    ("GET", "/v1/list"): "list_objects",  # a 1000-key page: aiohttp's share of its CPU is worth saving too
    ("GET", "/v1/versions"): "list_object_versions",
    ("POST", "/v1/command"): "command",
    ("POST", "/v1/commands"): "commands",
    ("POST", "/raft/messages"): "raft_messages",
    # Not per request, but on the same pooled connections: a call that aiohttp served would
    # keep its connection, and every call later made on it, off the lean front.
    ("GET", "/v1/cluster"): "get_cluster",  # the gateways' long poll of the cluster map
    ("POST", "/v1/nodes/heartbeat"): "node_heartbeat",
    ("POST", "/v1/repair/lease"): "repair_lease",
}


def served_by_front(method: str, path: str, body_bytes: int) -> bool:
    """Whether a call (``path`` without its query) is one the lean front serves itself."""
    return (method, path) in HOT_PATHS and body_bytes <= HOT_BODY_LIMIT
