"""``objstore key``: create, list and delete S3 access keys (users).

A key belongs to a user NAME: ``key create NAME`` makes a fresh access key and secret,
stored in the metadata service with owner and display name NAME. Buckets belong to their
creator's owner, so every key of one NAME sees the same buckets, and no other NAME's.

Finds the cluster as every admin command does (:mod:`ops.cli.cluster`). Secrets are
printed once, by ``create``; ``list`` never shows them. A deleted key stops working once
the gateways' credential caches expire (a few seconds).
"""
from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from metadata.api.client import MetadataClient
from objstore.types import Credential
from ops.cli.cluster import ClusterRef, add_cluster_arguments, run_admin
from ops.cli.output import OK, USAGE, CommandError, add_json_argument, emit, table

_NAME_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("key", aliases=["keys"], help="create, list and delete S3 access keys")
    actions = p.add_subparsers(dest="key_action", required=True)
    create = actions.add_parser("create", help="create a key for user NAME; prints the access key and secret")
    create.add_argument("name", metavar="NAME", help="the user (owner) the key acts as")
    lst = actions.add_parser("list", help="list access keys and their owners")
    delete = actions.add_parser("delete", help="delete an access key")
    delete.add_argument("access_key", metavar="ACCESS_KEY")
    for q in (create, lst, delete):
        add_cluster_arguments(q)
        add_json_argument(q)
    p.set_defaults(func=run)


def new_credential(name: str) -> Credential:
    """A fresh key pair for user ``name``; raises ValueError for an unusable name."""
    if not _NAME_RE.match(name):
        raise ValueError("a user name is 1-64 characters of letters, digits and _+=,.@-")
    access_key = "OBJ" + secrets.token_hex(8).upper()
    return Credential(access_key, secrets.token_urlsafe(30), owner=name, display_name=name)


def _listed(c: Credential) -> dict[str, str]:
    return {"access_key": c.access_key, "owner": c.owner, "display_name": c.display_name or c.owner}


def render_table(creds: list[dict[str, str]]) -> str:
    return table([("ACCESS KEY", "OWNER", "DISPLAY NAME")]
                 + [(c["access_key"], c["owner"], c["display_name"]) for c in creds])


def _bootstrap_key(data_dir: Path) -> str | None:
    """The access key ``objstore up`` gives its gateway, if this is a local data dir."""
    try:
        return json.loads((data_dir / "credentials.json").read_text()).get("access_key")
    except (OSError, ValueError):
        return None


async def _run(args: argparse.Namespace, cluster: ClusterRef) -> int:
    async with MetadataClient(list(cluster.metadata), cluster.secret, client_id="objstore-key",
                              tls=cluster.tls()) as meta:
        if args.key_action == "create":
            try:
                cred = new_credential(args.name)
            except ValueError as exc:
                raise CommandError(str(exc), USAGE) from None
            await meta.put_credential(cred)
            emit(args, {"access_key": cred.access_key, "secret_key": cred.secret_key, "owner": cred.owner},
                 lambda c: f"access key:  {c['access_key']}\nsecret key:  {c['secret_key']}\nowner:       {c['owner']}")
            return OK
        if args.key_action == "list":
            emit(args, [_listed(c) for c in await meta.list_credentials()], render_table)
            return OK
        existing = await meta.get_credential(args.access_key)
        if existing is None:
            raise CommandError(f"no access key {args.access_key}; `objstore key list` shows the keys there are")
        await meta.delete_credential(args.access_key)
        emit(args, {"deleted": args.access_key, "owner": existing.owner},
             lambda d: f"deleted access key {d['deleted']} (owner {d['owner']})")
        if args.access_key == _bootstrap_key(cluster.data_dir):
            print("note: this is the key `objstore up` created; its gateway refuses it once its credential cache "
                  "expires, and a restart registers it again only if given again (--access-key/--secret-key)",
                  file=sys.stderr)
        return OK


def run(args: argparse.Namespace) -> int:
    return run_admin(args, _run)
