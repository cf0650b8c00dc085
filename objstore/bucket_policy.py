"""Bucket policies: the subset of S3's policy language objstore honours, parsed and evaluated.

Pure: no IO, no clock. :func:`parse` turns the JSON a client sent with PutBucketPolicy into
an :class:`AnonymousGrants`, or raises 400 MalformedPolicy; :meth:`AnonymousGrants.allows`
answers whether anyone (an anonymous caller, or any signed caller) may perform an action.

What is accepted, and nothing else (AWS semantics for these elements):
- the document: ``Version`` ("2012-10-17" or "2008-10-17", optional), ``Id`` (optional) and
  ``Statement`` (one statement or a non-empty list);
- a statement: ``Sid`` (optional), ``Effect: "Allow"``, ``Principal: "*"`` (or
  ``{"AWS": "*"}`` / ``{"AWS": ["*"]}``), ``Action`` (a string or a non-empty list of
  ``s3:GetObject``, ``s3:ListBucket``, ``s3:GetBucketLocation``; case-insensitive, as IAM
  reads them) and ``Resource`` (a string or a non-empty list of ``arn:aws:s3:::<bucket>``,
  ``arn:aws:s3:::<bucket>/*``, ``arn:aws:s3:::<bucket>/<prefix>*`` or
  ``arn:aws:s3:::<bucket>/<key>``, all naming the policy's own bucket).

Invariants: anything else (Deny, Condition, NotPrincipal, NotAction, NotResource, other
actions, principals or buckets, wildcards other than one trailing ``*``) is MalformedPolicy,
so a policy is applied whole or not at all, never in part; a statement none of whose
actions applies to any of its resources is MalformedPolicy too, as in S3. Object actions
apply to object resources and bucket actions to the bucket resource only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from objstore.errors import MalformedPolicy

MAX_POLICY_BYTES = 20 * 1024  # S3's limit for a bucket policy
ARN_PREFIX = "arn:aws:s3:::"
VERSIONS = ("2012-10-17", "2008-10-17")

GET_OBJECT = "s3:GetObject"
LIST_BUCKET = "s3:ListBucket"
GET_BUCKET_LOCATION = "s3:GetBucketLocation"
OBJECT_ACTIONS = frozenset({GET_OBJECT})
BUCKET_ACTIONS = frozenset({LIST_BUCKET, GET_BUCKET_LOCATION})
_CANONICAL = {a.lower(): a for a in OBJECT_ACTIONS | BUCKET_ACTIONS}

_DOCUMENT_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "Action", "Resource"})


@dataclass(frozen=True, slots=True)
class KeyPattern:
    """Keys an object resource names: every key starting with ``prefix`` (``exact`` False,
    from a trailing ``*``) or exactly ``prefix``."""

    prefix: str
    exact: bool = False

    def matches(self, key: str) -> bool:
        return key == self.prefix if self.exact else key.startswith(self.prefix)


@dataclass(frozen=True, slots=True)
class AnonymousGrants:
    """What a bucket's policy lets everyone do: object actions on keys matching patterns,
    and bucket actions."""

    object_grants: tuple[tuple[str, KeyPattern], ...] = ()
    bucket_actions: frozenset[str] = frozenset()

    def allows(self, action: str, key: str | None = None) -> bool:
        """Whether everyone may perform ``action`` (on ``key`` for an object action)."""
        if action in BUCKET_ACTIONS:
            return action in self.bucket_actions
        if key is None:
            return False
        return any(a == action and p.matches(key) for a, p in self.object_grants)


NO_GRANTS = AnonymousGrants()


def _malformed(message: str) -> MalformedPolicy:
    return MalformedPolicy(message)


def _as_list(value: Any, name: str) -> list:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise _malformed(f"{name} must be a non-empty string or a non-empty list of strings.")
    return items


def _check_principal(principal: Any) -> None:
    if principal == "*":
        return
    if isinstance(principal, dict) and set(principal) == {"AWS"}:
        aws = principal["AWS"]
        if aws == "*" or aws == ["*"]:
            return
    raise _malformed("Only the anonymous principal \"*\" (or {\"AWS\": \"*\"}) is supported.")


def _resource(arn: str, bucket: str) -> KeyPattern | None:
    """The key pattern of an object resource, or None for the bucket itself."""
    if not arn.startswith(ARN_PREFIX):
        raise _malformed(f"Policy has invalid resource {arn!r}.")
    name, sep, rest = arn[len(ARN_PREFIX):].partition("/")
    if name != bucket:
        raise _malformed(f"Policy has invalid resource {arn!r}: it must name bucket {bucket!r}.")
    if not sep:
        return None
    wild = rest.endswith("*")
    stem = rest[:-1] if wild else rest
    if "*" in stem or "?" in stem or (not wild and not stem):
        raise _malformed(f"Resource {arn!r} is not supported: only one trailing '*' may be a wildcard.")
    return KeyPattern(stem, exact=not wild)


def _statement(st: Any, bucket: str) -> tuple[list[tuple[str, KeyPattern]], set[str]]:
    if not isinstance(st, dict):
        raise _malformed("Each statement must be a JSON object.")
    unknown = sorted(set(st) - _STATEMENT_KEYS)
    if unknown:
        raise _malformed(f"Policy element {unknown[0]} is not supported.")
    missing = [k for k in ("Effect", "Principal", "Action", "Resource") if k not in st]
    if missing:
        raise _malformed(f"Missing required field {missing[0]}.")
    if st["Effect"] != "Allow":
        raise _malformed(f"Only Effect \"Allow\" is supported; got {st['Effect']!r}.")
    if "Sid" in st and not isinstance(st["Sid"], str):
        raise _malformed("Sid must be a string.")
    _check_principal(st["Principal"])
    actions = set()
    for raw in _as_list(st["Action"], "Action"):
        action = _CANONICAL.get(raw.lower())
        if action is None:
            raise _malformed(f"Action {raw!r} is not supported; only s3:GetObject, s3:ListBucket and "
                             "s3:GetBucketLocation are.")
        actions.add(action)
    patterns = [_resource(arn, bucket) for arn in _as_list(st["Resource"], "Resource")]
    object_patterns = [p for p in patterns if p is not None]
    on_bucket = len(object_patterns) < len(patterns)
    grants = [(a, p) for a in sorted(actions & OBJECT_ACTIONS) for p in object_patterns]
    bucket_actions = actions & BUCKET_ACTIONS if on_bucket else set()
    if not grants and not bucket_actions:
        raise _malformed("Action does not apply to any resource(s) in statement.")
    return grants, bucket_actions


def parse(text: str | bytes, bucket: str) -> AnonymousGrants:
    """The grants of policy ``text`` for ``bucket``; raises MalformedPolicy (see the module)."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise _malformed(f"Policies are limited to {MAX_POLICY_BYTES} bytes.")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("Policies must be valid JSON and the first byte must be '{'.") from None
    if not isinstance(doc, dict):
        raise _malformed("Policies must be valid JSON and the first byte must be '{'.")
    unknown = sorted(set(doc) - _DOCUMENT_KEYS)
    if unknown:
        raise _malformed(f"Policy element {unknown[0]} is not supported.")
    if "Version" in doc and doc["Version"] not in VERSIONS:
        raise _malformed(f"The policy must contain a valid version string; got {doc['Version']!r}.")
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise _malformed("Missing required field Statement.")
    grants: list[tuple[str, KeyPattern]] = []
    bucket_actions: set[str] = set()
    for st in statements:
        g, b = _statement(st, bucket)
        grants += [x for x in g if x not in grants]
        bucket_actions |= b
    return AnonymousGrants(tuple(grants), frozenset(bucket_actions))


@lru_cache(maxsize=1024)
def grants_of(text: str, bucket: str) -> AnonymousGrants:
    """The grants of a stored policy (cached; "" means no policy). A stored policy was
    validated when it was put, so this raises only for a corrupted record."""
    return parse(text, bucket) if text else NO_GRANTS
