"""``objstore key``: create, list and delete S3 access keys (users).

A key belongs to a user NAME: ``key create NAME`` makes a fresh access key and secret,
stored in the metadata service with owner and display name NAME. Buckets belong to their
creator's owner, so every key of one NAME sees the same buckets, and no other NAME's.

Finds the cluster as ``objstore status`` does (``--data-dir`` with ``cluster.json`` and
``credentials.json``, or ``--metadata`` and ``--secret`` / env OBJSTORE_CLUSTER_SECRET).
Secrets are printed once, by ``create``; ``list`` never shows them. A deleted key stops
working once the gateways' credential caches expire (a few seconds).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from metadata.api.client import MetadataClient
from objstore.types import Credential
from ops.status import find_cluster

_NAME_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("key", aliases=["keys"], help="create, list and delete S3 access keys")
    actions = p.add_subparsers(dest="key_action", required=True)
    create = actions.add_parser("create", help="create a key for user NAME; prints the access key and secret")
    create.add_argument("name", metavar="NAME", help="the user (owner) the key acts as")
    lst = actions.add_parser("list", help="list access keys and their owners")
    lst.add_argument("--json", action="store_true", help="print JSON")
    delete = actions.add_parser("delete", help="delete an access key")
    delete.add_argument("access_key", metavar="ACCESS_KEY")
    for q in (create, lst, delete):
        q.add_argument("--data-dir", default="./objstore-data", help="local cluster data dir (default ./objstore-data)")
        q.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
        q.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.set_defaults(func=run)


def new_credential(name: str) -> Credential:
    """A fresh key pair for user ``name``; raises ValueError for an unusable name."""
    if not _NAME_RE.match(name):
        raise ValueError("a user name is 1-64 characters of letters, digits and _+=,.@-")
    access_key = "OBJ" + secrets.token_hex(8).upper()
    return Credential(access_key, secrets.token_urlsafe(30), owner=name, display_name=name)


def render_table(creds: list[Credential]) -> str:
    rows = [("ACCESS KEY", "OWNER", "DISPLAY NAME")]
    rows += [(c.access_key, c.owner, c.display_name or c.owner) for c in creds]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def _bootstrap_key(args: argparse.Namespace) -> str | None:
    """The access key ``objstore up`` gives its gateway, if this is a local data dir."""
    path = Path(args.data_dir) / "credentials.json"
    try:
        return json.loads(path.read_text()).get("access_key")
    except (OSError, ValueError):
        return None


async def _run(args: argparse.Namespace, addrs: list[str], secret: str) -> int:
    async with MetadataClient(addrs, secret, client_id="objstore-key") as meta:
        if args.key_action == "create":
            try:
                cred = new_credential(args.name)
            except ValueError as exc:
                print(f"objstore key create: {exc}", file=sys.stderr)
                return 2
            await meta.put_credential(cred)
            print(f"access key:  {cred.access_key}\nsecret key:  {cred.secret_key}\nowner:       {cred.owner}")
            return 0
        if args.key_action == "list":
            creds = await meta.list_credentials()
            if args.json:
                print(json.dumps([{"access_key": c.access_key, "owner": c.owner,
                                   "display_name": c.display_name or c.owner} for c in creds], indent=2))
            else:
                print(render_table(creds))
            return 0
        existing = await meta.get_credential(args.access_key)
        if existing is None:
            print(f"objstore key delete: no access key {args.access_key}", file=sys.stderr)
            return 1
        await meta.delete_credential(args.access_key)
        print(f"deleted access key {args.access_key} (owner {existing.owner})")
        if args.access_key == _bootstrap_key(args):
            print("note: this is the key `objstore up` starts its gateway with; that gateway keeps accepting it "
                  "and stores it again when it restarts", file=sys.stderr)
        return 0


def run(args: argparse.Namespace) -> int:
    try:
        addrs, secret = find_cluster(args)
    except SystemExit:
        print("objstore key: no cluster found; give --metadata and --secret, or --data-dir of a running "
              "`objstore up`", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, addrs, secret))
    except Exception as exc:  # noqa: BLE001
        print(f"objstore key: cannot reach the metadata service at {', '.join(addrs)}: {exc}", file=sys.stderr)
        return 1
