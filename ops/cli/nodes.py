"""``objstore node list | add | drain | remove | set-weight | ok-to-stop``: cluster membership.

Every action asks the metadata leader (``/v1/nodes...``, with the cluster secret, found as
every admin command finds it: :mod:`ops.cli.cluster`); the guards live there
(:mod:`metadata.membership`). ``--json`` prints the leader's answer. ``ok-to-stop`` exits 0
when stopping the node is safe, 1 when not (so scripts can branch on it).

:func:`render_list` and :func:`render_stop` are pure.
"""
from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp

from metadata.api.client import MetadataClient
from objstore.errors import ObjstoreError
from ops.cli.cluster import add_cluster_arguments, find_cluster
from ops.cli.output import FAILED, OK, CommandError, add_json_argument, emit, human_size, table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("node", help="storage node membership: list, add, drain, remove, set-weight, ok-to-stop")
    actions = p.add_subparsers(dest="node_action", required=True)
    parsers = [actions.add_parser("list", help="every storage node: state, weight, keys held, free space")]
    for name, text in (("add", "put a joining (or drained, out, removed) node in the ring"),
                       ("drain", "move every copy off a node (it keeps serving reads meanwhile)"),
                       ("remove", "take a node out of the cluster (refused while it holds data, unless --force)"),
                       ("ok-to-stop", "would stopping the node leave any object or upload part below its "
                                      "write quorum?")):
        a = actions.add_parser(name, help=text)
        a.add_argument("node_id")
        parsers.append(a)
        if name == "remove":
            a.add_argument("--force", action="store_true",
                           help="remove it though it holds data: counts as losing the node (repair restores it)")
    w = actions.add_parser("set-weight", help="change a node's share of the ring")
    w.add_argument("node_id")
    w.add_argument("weight", type=float)
    parsers.append(w)
    for a in parsers:
        add_cluster_arguments(a)
        add_json_argument(a)
    p.set_defaults(func=run)


def render_list(d: dict[str, Any]) -> str:
    rows = [("NODE", "STATE", "WEIGHT", "ZONE", "KEYS", "PARTS", "FREE", "HEARTBEAT")]
    for n in sorted(d["nodes"], key=lambda n: n["node_id"]):
        age = n.get("heartbeat_age")
        rows.append((n["node_id"], n["state"], f"{n.get('weight', 1.0):g}", n.get("zone", ""), str(n.get("keys", 0)),
                     str(n.get("upload_parts", 0)), human_size(n.get("free_bytes")), "-" if age is None else f"{age:.1f}s ago"))
    return (table(rows) + f"\nepoch {d['epoch']}   widest policy {d.get('widest_policy') or '-'} "
            f"needs {d.get('needed', 0)} up nodes")


def render_stop(d: dict[str, Any]) -> str:
    parts_checked = d.get("upload_parts_checked", 0)
    if d["ok"]:
        also = f", {parts_checked} parts of multipart uploads in progress" if parts_checked else ""
        return (f"yes: stopping {d['node']} leaves every object and upload part at its write quorum "
                f"({d['keys_checked']} keys{also} checked)")
    below = []
    if d["blobs_below_write_quorum"]:
        below.append(f"{d['blobs_below_write_quorum']} blob(s) of {d['keys_below_write_quorum']} key(s)")
    if d.get("upload_parts_below_write_quorum"):
        below.append(f"{d['upload_parts_below_write_quorum']} part(s) of {d['uploads_below_write_quorum']} "
                     f"multipart upload(s) in progress")
    sample = ", ".join(list(d["sample"]) + [f"upload {u}" for u in d.get("upload_sample", ())])
    return (f"no: stopping {d['node']} would leave {' and '.join(below)} below their write quorum "
            f"(e.g. {sample})")


def render_change(d: dict[str, Any]) -> str:
    if "weight" in d:
        return f"{d['node']}: weight {d['weight']:g} (epoch {d['cluster_map']['epoch']})"
    return f"{d['node']}: {d['from']} -> {d['state']} (epoch {d['cluster_map']['epoch']})"


async def _call(args: argparse.Namespace) -> dict[str, Any]:
    cluster = find_cluster(args)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        meta = MetadataClient(list(cluster.metadata), cluster.secret, session=session, tls=cluster.tls())
        action = args.node_action
        try:
            if action == "list":
                return await meta.list_nodes()
            if action == "ok-to-stop":
                return await meta.ok_to_stop(args.node_id)
            if action == "set-weight":
                return await meta.set_node_weight(args.node_id, args.weight)
            return await meta.change_node(args.node_id, action, bool(getattr(args, "force", False)))
        except ObjstoreError as exc:
            raise CommandError(exc.message) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise cluster.unreachable(exc) from None


def run(args: argparse.Namespace) -> int:
    d = asyncio.run(_call(args))
    action = args.node_action
    render = render_list if action == "list" else render_stop if action == "ok-to-stop" else render_change
    emit(args, d, render)
    if action == "ok-to-stop" and not d["ok"]:
        return FAILED
    return OK
