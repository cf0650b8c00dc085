"""The binary form of a Raft message batch (``POST /raft/messages`` and its reply).

The JSON batch (:func:`metadata.replication.transport.encode_batch`) costs each end tens
of microseconds per message to build and parse (dicts, base64, validation), and every
commit takes two batches each way on the leader; this form is a fixed header per message
and the entries' bytes as they are:

    batch   := MAGIC flags:u8 len(from):u16 from len(address):u16 address len(to):u16 to
               count:u32 message*
    message := type:u8 reject:u8 term:u64 log_term:u64 index:u64 commit:u64
               reject_hint:u64 len(context):u32 context n_entries:u32 entry*
    entry   := index:u64 term:u64 kind:u8 len(data):u32 data

Integers are big-endian and unsigned (so never negative); strings UTF-8. ``flags`` bit 0
asks for replies. Every message of a batch goes from ``from`` to ``to`` (so neither is
repeated per message), and ``to`` must be the receiver. SNAP messages do not travel here
(they stream on ``/raft/snapshot``). Decoding checks every length against the body and
raises InvalidArgument on anything malformed or left over. The body is signed like any
other (:mod:`objstore.internal_auth` covers its bytes); ``Content-Type`` is
:data:`CONTENT_TYPE`, and a receiver answers a binary batch with a binary one.
"""
from __future__ import annotations

import struct
from typing import Iterable

from metadata.raft.messages import Message, MessageType
from metadata.raft.records import Entry, EntryKind
from objstore.errors import InvalidArgument

MAGIC = b"RB\x01"  # a JSON batch starts with "{"
CONTENT_TYPE = "application/x-objstore-raft"

# A message type's code is its place here: append new types, never reorder.
_TYPES = (MessageType.VOTE, MessageType.VOTE_RESP, MessageType.PRE_VOTE, MessageType.PRE_VOTE_RESP,
          MessageType.APP, MessageType.APP_RESP, MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESP,
          MessageType.SNAP, MessageType.TIMEOUT_NOW, MessageType.READ_INDEX, MessageType.READ_INDEX_RESP)
_CODE = {t: i for i, t in enumerate(_TYPES)}
_KINDS = {int(k): k for k in EntryKind}
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_MSG = struct.Struct("!BBQQQQQI")  # ... len(context)
_ENTRY = struct.Struct("!QQBI")
_SNAP = MessageType.SNAP


def _s(text: str) -> bytes:
    b = text.encode()
    return _U16.pack(len(b)) + b


def encode(frm: str, address: str, to: str, msgs: "Iterable[Message]", reply: bool = False) -> bytes:
    """The binary batch of ``msgs`` (all from ``frm`` to ``to``; no SNAP)."""
    msgs = list(msgs)
    parts = [MAGIC, b"\x01" if reply else b"\x00", _s(frm), _s(address), _s(to), _U32.pack(len(msgs))]
    pack_msg, pack_entry = _MSG.pack, _ENTRY.pack
    for m in msgs:
        if m.to != to or m.frm != frm or m.type is _SNAP:
            raise ValueError(f"message {m.type.value} {m.frm}->{m.to} does not fit a binary batch {frm}->{to}")
        parts.append(pack_msg(_CODE[m.type], m.reject, m.term, m.log_term, m.index, m.commit, m.reject_hint,
                              len(m.context)))
        if m.context:
            parts.append(m.context)
        parts.append(_U32.pack(len(m.entries)))
        for e in m.entries:
            parts.append(pack_entry(e.index, e.term, e.kind, len(e.data)))
            parts.append(e.data)
    return b"".join(parts)


def _str(body: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(body):
        raise InvalidArgument("truncated raft batch")
    (n,) = _U16.unpack_from(body, pos)
    pos += 2
    if pos + n > len(body):
        raise InvalidArgument("truncated raft batch")
    try:
        return body[pos:pos + n].decode(), pos + n
    except UnicodeDecodeError:
        raise InvalidArgument("a raft batch's ids must be UTF-8") from None


def decode(body: bytes, me: str) -> tuple[str, str, list[Message], bool]:
    """The sender, its address ("" if none), the messages and whether replies are asked
    for, of a binary batch addressed to ``me``; raises InvalidArgument."""
    if body[:3] != MAGIC or len(body) < 4:
        raise InvalidArgument("not a binary raft batch")
    flags = body[3]
    if flags > 1:
        raise InvalidArgument("unknown raft batch flags")
    frm, pos = _str(body, 4)
    address, pos = _str(body, pos)
    to, pos = _str(body, pos)
    if not frm:
        raise InvalidArgument("a raft batch needs its sender id")
    if address and ":" not in address:
        raise InvalidArgument("a raft batch's address must be host:port")
    if to != me:
        raise InvalidArgument(f"a raft batch {frm}->{to} reached {me}")
    size = len(body)
    if pos + 4 > size:
        raise InvalidArgument("truncated raft batch")
    (count,) = _U32.unpack_from(body, pos)
    pos += 4
    out: list[Message] = []
    msg_size, entry_size = _MSG.size, _ENTRY.size
    unpack_msg, unpack_entry, unpack_u32 = _MSG.unpack_from, _ENTRY.unpack_from, _U32.unpack_from
    try:
        for _ in range(count):
            if pos + msg_size > size:
                raise InvalidArgument("truncated raft batch")
            code, reject, term, log_term, index, commit, hint, nctx = unpack_msg(body, pos)
            pos += msg_size
            if code >= len(_TYPES) or reject > 1:
                raise InvalidArgument("malformed raft message header")
            mtype = _TYPES[code]
            if mtype is _SNAP:
                raise InvalidArgument("snapshots travel on /raft/snapshot")
            if pos + nctx + 4 > size:
                raise InvalidArgument("truncated raft batch")
            context = body[pos:pos + nctx]
            pos += nctx
            (n,) = unpack_u32(body, pos)
            pos += 4
            entries = []
            for _ in range(n):
                if pos + entry_size > size:
                    raise InvalidArgument("truncated raft batch")
                ei, et, kind, ln = unpack_entry(body, pos)
                pos += entry_size
                if pos + ln > size:
                    raise InvalidArgument("truncated raft batch")
                entries.append(Entry(ei, et, body[pos:pos + ln], _KINDS[kind]))
                pos += ln
            out.append(Message(mtype, me, frm, term, log_term, index, tuple(entries), commit, bool(reject), hint,
                               context))
    except KeyError:
        raise InvalidArgument("unknown raft entry kind") from None
    if pos != size:
        raise InvalidArgument("trailing bytes after a raft batch")
    return frm, address, out, bool(flags & 1)
