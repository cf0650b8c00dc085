"""The commands of the metadata state machine, their versioned encoding, and their outcomes.

A command is a frozen dataclass. The same bytes travel over HTTP from a client, sit in the
durable log (and later in Raft log entries), and are applied by every replica's
:class:`metadata.fsm.machine.MetadataFSM`, so the encoding is stable and versioned:
``{"v": 1, "type": "PutObject", "client_id": ..., "seq": ..., "ack": ..., "args": {...}}``.

Exactly-once: a command carries the proposing client's id, a sequence number unique per
client (``seq >= 1``; ``seq == 0`` or an empty ``client_id`` opts out), and ``ack``, the
lowest sequence number for which the client still awaits an answer (every lower one is
answered and will never be retried). The state machine remembers the outcome of each
unanswered command per client, so a retried command returns the remembered outcome
without applying twice.

Invariants: decoding validates every field's type, so a command that decodes can be applied
deterministically; encode(decode(b)) is equivalent to b. A command read back from the Raft
log (:func:`decode_logged_command`) was validated when it was proposed and is decoded
without the field checks (see there why that is safe). Outcomes are plain JSON values
(records as ``to_dict``), so they can be remembered in snapshots and sent over HTTP as is.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from objstore.errors import InvalidArgument, ObjstoreError, error_from_code
from objstore.repair_records import RepairOutcome
from metadata.api.results import DeleteResult, WriteResult
from metadata.api.upload_records import CompletedUpload, MultipartUpload, PartList, UploadedPart
from objstore.formats import check_version
from objstore.types import Bucket, ClusterMap, Credential, NodeInfo, ObjectVersion, PartRef

COMMAND_VERSION = 1


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command: the session fields used for de-duplication."""

    TYPE: ClassVar[str] = ""
    # Fields holding records, by field name -> record class (encoded with to_dict).
    RECORDS: ClassVar[dict[str, type]] = {}
    # The record class of the result (None: the command returns nothing).
    RESULT: ClassVar[type | None] = None

    client_id: str = field(default="", kw_only=True)
    seq: int = field(default=0, kw_only=True)
    ack: int = field(default=0, kw_only=True)

    def with_session(self, client_id: str, seq: int, ack: int) -> "Command":
        return dataclasses.replace(self, client_id=client_id, seq=seq, ack=ack)

    @classmethod
    def decode_result(cls, data: Any) -> Any:
        """The typed result from its wire form (a record, or None)."""
        if data is None or cls.RESULT is None:
            return None
        return cls.RESULT.from_dict(data)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """Does nothing; a Raft leader commits one at the start of its term."""

    TYPE: ClassVar[str] = "Noop"


@dataclass(frozen=True, slots=True)
class RegisterNode(Command):
    """Insert or update a storage node; returns the ClusterMap."""

    TYPE: ClassVar[str] = "RegisterNode"
    RECORDS: ClassVar[dict[str, type]] = {"node": NodeInfo}
    RESULT: ClassVar[type | None] = ClusterMap
    node: NodeInfo


@dataclass(frozen=True, slots=True)
class SetNodeState(Command):
    """Set a node's state (one of ``NODE_STATES``); returns the ClusterMap. With ``if_state``
    the change applies only while the node is in that state (else nothing changes), so an
    automatic transition never overwrites one made meanwhile. With ``min_writable`` it
    applies only if at least that many nodes are left in ``WRITABLE_STATES`` after it (the
    membership guard of drain and remove, decided in the log's order: two operator changes
    checked against the same map cannot both pass)."""

    TYPE: ClassVar[str] = "SetNodeState"
    RESULT: ClassVar[type | None] = ClusterMap
    node_id: str
    state: str
    if_state: str = ""
    min_writable: int = 0


@dataclass(frozen=True, slots=True)
class SetNodeWeight(Command):
    """Set a node's ring weight (its share of the ring, > 0); returns the ClusterMap. The map's
    weight is the operator's from then on: a heartbeat never changes a known node's weight."""

    TYPE: ClassVar[str] = "SetNodeWeight"
    RESULT: ClassVar[type | None] = ClusterMap
    node_id: str
    weight: float


@dataclass(frozen=True, slots=True)
class HandOverRings(Command):
    """Every manifest held by the nodes of the rings kept older than the ring that came
    into effect at ``ring_epoch`` (the current one or a kept one) is on that ring's owners:
    those older rings are dropped (a ring no longer kept: nothing changes). Returns the
    ClusterMap."""

    TYPE: ClassVar[str] = "HandOverRings"
    RESULT: ClassVar[type | None] = ClusterMap
    ring_epoch: int


@dataclass(frozen=True, slots=True)
class CreateBucket(Command):
    """Create a bucket; returns the Bucket."""

    TYPE: ClassVar[str] = "CreateBucket"
    RESULT: ClassVar[type | None] = Bucket
    name: str
    owner: str
    policy: str
    created: float
    consistency: str = "strong"
    write_quorum: int = 0  # 0: the policy's default (Policy.default_write_quorum)


@dataclass(frozen=True, slots=True)
class DeleteBucket(Command):
    """Delete a bucket with no object versions or delete markers. With ``discard_uploads``
    its multipart uploads in progress are discarded with it (their parts, a PartList, are
    returned for garbage collection); without it (commands logged before S3's rule was
    followed) uploads in progress make the bucket non-empty, so old logs replay as applied."""

    TYPE: ClassVar[str] = "DeleteBucket"
    RESULT: ClassVar[type | None] = PartList
    name: str
    discard_uploads: bool = False


@dataclass(frozen=True, slots=True)
class PutCredential(Command):
    TYPE: ClassVar[str] = "PutCredential"
    RECORDS: ClassVar[dict[str, type]] = {"cred": Credential}
    cred: Credential


@dataclass(frozen=True, slots=True)
class DeleteCredential(Command):
    TYPE: ClassVar[str] = "DeleteCredential"
    access_key: str


@dataclass(frozen=True, slots=True)
class PutObject(Command):
    """Make ``version`` the current version of its key (a new version, or the key's null
    version, by the bucket's versioning); returns a WriteResult naming the version it
    replaced, if any.

    Compare-and-set, checked atomically when the command applies: ``if_none_match`` (S3
    ``If-None-Match: *``) refuses with PreconditionFailed when the key has a current
    object; ``if_match`` (an ETag, quoted or not, or ``*``) refuses with PreconditionFailed
    when the current object's ETag differs, NoSuchKey when there is none.
    """

    TYPE: ClassVar[str] = "PutObject"
    RECORDS: ClassVar[dict[str, type]] = {"version": ObjectVersion}
    RESULT: ClassVar[type | None] = WriteResult
    version: ObjectVersion
    if_match: str = ""
    if_none_match: bool = False
    # Stamped by the proposing leader (its clock minus gc_grace/2): the blobs of a version
    # whose id is older may have been collected, so the commit is refused. 0: no guard.
    commit_floor: float = 0.0


@dataclass(frozen=True, slots=True)
class DeleteObject(Command):
    """S3 DeleteObject; returns a DeleteResult (idempotent: a missing key is no error).

    ``version_id`` (S3's form, "null" included; "" for none) removes that version for good.
    Without it, an unversioned bucket drops the key; a versioned one gets a delete marker
    with id ``marker_id`` and time ``now`` (InvalidArgument when ``marker_id`` is "").
    """

    TYPE: ClassVar[str] = "DeleteObject"
    RESULT: ClassVar[type | None] = DeleteResult
    bucket: str
    key: str
    version_id: str = ""
    marker_id: str = ""
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class SetBucketVersioning(Command):
    """Set a bucket's versioning to "Enabled" or "Suspended"; returns the Bucket."""

    TYPE: ClassVar[str] = "SetBucketVersioning"
    RESULT: ClassVar[type | None] = Bucket
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class SetBucketTags(Command):
    """Replace a bucket's tag set (empty: remove it). Raises InvalidTag."""

    TYPE: ClassVar[str] = "SetBucketTags"
    name: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetObjectTags(Command):
    """Replace the tag set of a version (``version_id`` "": the current one); returns a
    WriteResult naming it. Raises NoSuchKey, NoSuchVersion, MethodNotAllowed (a delete
    marker), InvalidTag."""

    TYPE: ClassVar[str] = "SetObjectTags"
    RESULT: ClassVar[type | None] = WriteResult
    bucket: str
    key: str
    tags: dict[str, str] = field(default_factory=dict)
    version_id: str = ""


@dataclass(frozen=True, slots=True)
class SetBucketPolicy(Command):
    """Replace a bucket's policy (JSON text; "" removes it). Raises NoSuchBucket,
    MalformedPolicy (nothing is stored then)."""

    TYPE: ClassVar[str] = "SetBucketPolicy"
    name: str
    policy: str = ""


@dataclass(frozen=True, slots=True)
class SetBucketAcl(Command):
    """Set a bucket's canned ACL: public-read (anyone may list it) or private."""

    TYPE: ClassVar[str] = "SetBucketAcl"
    name: str
    public_read: bool = False


@dataclass(frozen=True, slots=True)
class SetObjectAcl(Command):
    """Set the canned ACL of a version (``version_id`` "": the current one): public-read
    (anyone may read it) or private; returns a WriteResult naming it. Raises like
    SetObjectTags."""

    TYPE: ClassVar[str] = "SetObjectAcl"
    RESULT: ClassVar[type | None] = WriteResult
    bucket: str
    key: str
    public_read: bool = False
    version_id: str = ""


@dataclass(frozen=True, slots=True)
class CreateMultipartUpload(Command):
    """Start a multipart upload (the id comes from the gateway); returns the upload."""

    TYPE: ClassVar[str] = "CreateMultipartUpload"
    RECORDS: ClassVar[dict[str, type]] = {"upload": MultipartUpload}
    RESULT: ClassVar[type | None] = MultipartUpload
    upload: MultipartUpload


@dataclass(frozen=True, slots=True)
class PutPart(Command):
    """Record an uploaded part; returns the PartRef it replaced, or None."""

    TYPE: ClassVar[str] = "PutPart"
    RECORDS: ClassVar[dict[str, type]] = {"part": UploadedPart}
    RESULT: ClassVar[type | None] = PartRef
    bucket: str
    key: str
    upload_id: str
    part: UploadedPart
    commit_floor: float = 0.0  # as PutObject's


@dataclass(frozen=True, slots=True)
class AbortMultipartUpload(Command):
    """Remove an upload; returns its parts (a PartList) for garbage collection."""

    TYPE: ClassVar[str] = "AbortMultipartUpload"
    RESULT: ClassVar[type | None] = PartList
    bucket: str
    key: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class CompleteMultipartUpload(Command):
    """Validate and complete an upload; returns a CompletedUpload.

    ``parts`` are ``[number, etag, {algorithm: checksum}]`` rows in the client's order;
    ``checksums`` the whole-object checksums the client sent, if any."""

    TYPE: ClassVar[str] = "CompleteMultipartUpload"
    RESULT: ClassVar[type | None] = CompletedUpload
    bucket: str
    key: str
    upload_id: str
    parts: list
    version_id: str
    last_modified: float
    checksums: dict[str, str] = field(default_factory=dict)
    if_match: str = ""  # the write conditions of PutObject, for the completed object
    if_none_match: bool = False


@dataclass(frozen=True, slots=True)
class RepairPlacement(Command):
    """Conditionally replace where one blob is: the placement of version ``version_id``
    (the stored id) of (bucket, key), or of its part ``part`` (0: the version's own blob),
    becomes ``placement`` only if the version still exists and its placement is exactly
    ``expected``; otherwise nothing changes. Returns a RepairOutcome. Never creates a
    version, so it cannot overwrite a newer one or resurrect a deleted one. ``copied_at``
    (unix seconds on the copying node; 0: not given, as in old logs) is when the new copy
    started: a copy that began before the state machine's ``gc_floor`` may already have
    been collected as a stray copy, so such a commit answers "too-old" and changes nothing.
    With ``upload_id`` the blob is part ``part`` of that multipart upload in progress of
    (bucket, key), and ``version_id`` the part's own id (its blob id): the same condition
    holds on the part's placement ("deleted" when the upload or that part is gone)."""

    TYPE: ClassVar[str] = "RepairPlacement"
    RESULT: ClassVar[type | None] = RepairOutcome
    bucket: str
    key: str
    version_id: str
    part: int
    expected: list
    placement: list
    copied_at: float = 0.0
    upload_id: str = ""


@dataclass(frozen=True, slots=True)
class MarkCollectable(Command):
    """Raise the state machine's ``gc_floor`` to ``floor`` (never lowers it): storage nodes
    may then collect unreferenced blobs whose version id is older, and no later commit of
    a version or part that old is accepted. Proposed before each garbage-collection check."""

    TYPE: ClassVar[str] = "MarkCollectable"
    floor: float


@dataclass(frozen=True, slots=True)
class SetBucketConsistency(Command):
    """Set a bucket's default read consistency ("strong", "quorum" or "one"); returns the
    Bucket. Raises InvalidArgument for another level."""

    TYPE: ClassVar[str] = "SetBucketConsistency"
    RESULT: ClassVar[type | None] = Bucket
    name: str
    level: str


COMMANDS: dict[str, type[Command]] = {
    c.TYPE: c
    for c in (
        Noop, RegisterNode, SetNodeState, CreateBucket, DeleteBucket,
        PutCredential, DeleteCredential, PutObject, DeleteObject,
        SetBucketVersioning, SetBucketTags, SetObjectTags, SetBucketPolicy, SetBucketAcl, SetObjectAcl,
        CreateMultipartUpload, PutPart, AbortMultipartUpload, CompleteMultipartUpload,
        RepairPlacement, MarkCollectable, SetBucketConsistency, SetNodeWeight, HandOverRings,
    )
}
_SESSION_FIELDS = ("client_id", "seq", "ack")


# --- encoding ---------------------------------------------------------------------------------


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """``dataclasses.fields`` of a class, computed once (it is on every command's path)."""
    return dataclasses.fields(cls)


@functools.cache
def _decoding(cls: type) -> tuple[tuple[tuple[str, Any], ...], tuple[str, ...], tuple[tuple[str, type], ...]]:
    """How a command of ``cls`` is rebuilt, worked out once per class: its session fields
    (name, default), its plain arguments, its record arguments (name, record class)."""
    fields = _fields(cls)
    records = cls.RECORDS  # type: ignore[attr-defined]
    return (tuple((f.name, f.default) for f in fields if f.name in _SESSION_FIELDS),
            tuple(f.name for f in fields if f.name not in _SESSION_FIELDS and f.name not in records),
            tuple((f.name, records[f.name]) for f in fields if f.name in records))


def command_to_dict(cmd: Command) -> dict[str, Any]:
    args: dict[str, Any] = {}
    records = cmd.RECORDS
    for f in _fields(type(cmd)):
        if f.name in _SESSION_FIELDS:
            continue
        value = getattr(cmd, f.name)
        args[f.name] = value.to_dict() if f.name in records else value
    return {
        "v": COMMAND_VERSION, "type": cmd.TYPE,
        "client_id": cmd.client_id, "seq": cmd.seq, "ack": cmd.ack, "args": args,
    }


# One encoder for every command: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_command(cmd: Command) -> bytes:
    """The stable bytes of ``cmd`` (UTF-8 JSON, compact)."""
    return _ENCODER.encode(command_to_dict(cmd)).encode()


def command_from_dict(d: Any, *, checked: bool = True) -> Command:
    """Rebuild and type-check a command; raises InvalidArgument when it is malformed.

    ``checked=False`` leaves out the field type checks (:func:`check_types`), for a
    command read back from the Raft log only (see :func:`decode_logged_command`); the
    structure (version, type, args, records) is still checked."""
    if not isinstance(d, dict):
        raise InvalidArgument("a command must be a JSON object")
    check_version("a metadata command", d.get("v"), COMMAND_VERSION, error=InvalidArgument)
    if d.get("v") != COMMAND_VERSION:
        raise InvalidArgument(f"unsupported command version {d.get('v')!r}")
    cls = COMMANDS.get(d.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise InvalidArgument(f"unknown command type {d.get('type')!r}")
    args = d.get("args")
    if not isinstance(args, dict):
        raise InvalidArgument("command args must be a JSON object")
    session, plain, records = _decoding(cls)
    try:
        kw = {name: d.get(name, default) for name, default in session}
        for name in plain:
            if name in args:
                kw[name] = args[name]
        for name, record in records:
            if name in args:
                kw[name] = record.from_dict(args[name])  # type: ignore[attr-defined]
        cmd = cls(**kw)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise InvalidArgument(f"malformed {cls.TYPE} command: {exc}") from None
    if checked:
        check_types(cmd)
        for name in cls.RECORDS:
            check_types(getattr(cmd, name))
    return cmd


def decode_command(data: bytes) -> Command:
    try:
        d = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"command is not JSON: {exc}") from None
    return command_from_dict(d)


def decode_logged_command(data: bytes) -> Command:
    """A command from a committed Raft log entry, to apply: decoded as
    :func:`decode_command` but without the field type checks. Every entry was checked
    where it entered the log: a command from the network is decoded with the checks by the
    HTTP layer before the leader proposes it (commands the service makes itself are typed
    by construction, or checked where their fields come from a request, as a repair
    commit's), and the leader applies that very object, unchecked again. The bytes a
    member applies are the ones proposed: they cross the network signed (HMAC) and sit in
    the log checksummed. So the checks could only fail here where they passed on the
    leader, and a member that then applied a no-op would diverge from the leader; leaving
    them out saves each follower, and each replay, the work of checking every field."""
    try:
        d = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"command is not JSON: {exc}") from None
    return command_from_dict(d, checked=False)


def _utf8(value: Any) -> bool:
    """True for a str that encodes as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        return False
    if value.isascii():  # the usual case, checked in C without encoding
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _all_utf8(values: Any) -> bool:
    """True when every item of ``values`` is a str that encodes as UTF-8: one join, one
    ASCII test and, for text beyond ASCII, one encode (C work, not a call per item).
    Joining cannot hide a lone surrogate: Python strings never pair surrogates up."""
    try:
        text = "".join(values)
    except TypeError:  # an item that is not a str
        return False
    return text.isascii() or _utf8(text)


def _fields_ok(obj: Any, strs: Callable[[Any], Any] | None, ints: tuple[str, ...], floats: tuple[str, ...],
               bools: tuple[str, ...], dicts: tuple[str, ...], tuples: tuple[str, ...]) -> bool:
    if strs is not None and not _all_utf8(strs(obj)):
        return False
    for name in ints:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool):
            return False
    for name in floats:
        value = getattr(obj, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
    for name in bools:
        if not isinstance(getattr(obj, name), bool):
            return False
    for name in dicts:
        value = getattr(obj, name)
        if not isinstance(value, dict) or (value and not (_all_utf8(value) and _all_utf8(value.values()))):
            return False
    for name in tuples:
        value = getattr(obj, name)
        if not isinstance(value, tuple) or (value and not _all_utf8(value)):
            return False
    return True


_KINDS = ("str", "int", "float", "bool", "dict[str, str]", "tuple[str, ...]")
_CHECKERS: dict[type, Callable[[Any], None]] = {}  # one per dataclass checked (a few dozen)


def _checker(cls: type) -> Callable[[Any], None]:
    """The check of a dataclass's fields against their annotations (those of ``_KINDS``;
    other annotations are not checked here), worked out once per class."""
    names: dict[str, list[str]] = {k: [] for k in _KINDS}
    for f in dataclasses.fields(cls):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if t in names:
            names[t].append(f.name)
    strs = names["str"]
    # attrgetter of several names gives a tuple, of one name the value alone
    get_strs = None if not strs else operator.attrgetter(*strs) if len(strs) > 1 else \
        (lambda obj, _g=operator.attrgetter(strs[0]): (_g(obj),))
    rest = tuple(tuple(names[k]) for k in _KINDS[1:])
    order = [f.name for f in dataclasses.fields(cls)]

    def check(obj: Any) -> None:
        if _fields_ok(obj, get_strs, *rest):
            return
        for name in order:  # the first field at fault, for the message
            t = next((k for k in _KINDS if name in names[k]), None)
            if t is not None and not _one_ok(t, getattr(obj, name)):
                raise InvalidArgument(f"field {name} of {cls.__name__} has the wrong type")
        raise InvalidArgument(f"a field of {cls.__name__} has the wrong type")

    return check


def _one_ok(t: str, value: Any) -> bool:
    """The check of one field whose annotation is ``t`` (one of ``_KINDS``)."""
    if t == "str":
        return _utf8(value)
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, bool)
    if t == "dict[str, str]":
        return isinstance(value, dict) and all(_utf8(k) and _utf8(v) for k, v in value.items())
    return isinstance(value, tuple) and all(_utf8(v) for v in value)


def check_types(obj: Any) -> None:
    """Check each field of a dataclass against its annotation; raises InvalidArgument."""
    check = _CHECKERS.get(type(obj))
    if check is None:
        check = _CHECKERS[type(obj)] = _checker(type(obj))
    check(obj)


# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying a command produced, in wire form: a JSON value, or an error dict."""

    value: Any = None
    error: dict[str, Any] | None = None

    @classmethod
    def of_error(cls, err: ObjstoreError) -> "Outcome":
        return cls(error=err.to_dict())

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise error_from_code(self.error.get("code", "InternalError"), self.error.get("message"), self.error.get("extra"))

    def result(self, cmd_cls: type[Command]) -> Any:
        """The typed result; raises the ObjstoreError the command failed with."""
        self.raise_for_error()
        return cmd_cls.decode_result(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error} if self.error is not None else {"value": self.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Outcome":
        return cls(value=d.get("value"), error=d.get("error"))
