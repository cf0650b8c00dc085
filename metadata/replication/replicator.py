"""The interface between a metadata node's HTTP layer and its replicated state machine.

The HTTP layer (:mod:`metadata.app`, :mod:`metadata.upload_http`) only ever calls a
:class:`Replicator`: ``propose(cmd)`` to change state and ``read(fn)`` to look at it. The
implementation is :class:`metadata.replication.driver.RaftReplicator`, for a group of any
size (a single node is a group of one voter).
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, TypeVar

from metadata.api.commands import Command, Outcome
from metadata.fsm.machine import MetadataFSM
from objstore.errors import NotLeader

T = TypeVar("T")


class Replicator(Protocol):
    """How the service changes and reads the replicated state machine."""

    async def propose(self, cmd: Command) -> Outcome:
        """Commit ``cmd`` and return its outcome once applied; raises NotLeader or
        ServiceUnavailable when it cannot be committed here."""
        ...

    # Optional: ``async propose_all(cmds) -> [Outcome | ObjstoreError]``, what gathering
    # ``propose`` over ``cmds`` gives (an error in place of a command handed back as is),
    # used by the batch route when present (RaftReplicator has it: no task per command).

    async def read(self, fn: Callable[[MetadataFSM], T]) -> T:
        """Run ``fn`` on state that includes every command acknowledged before the call."""
        ...

    def status(self) -> dict[str, Any]: ...

    def is_leader(self) -> bool:
        """Whether this node leads now (its own view; ``read`` confirms it)."""
        ...

    def not_leader(self) -> NotLeader:
        """The error for a leader-only request here, naming the leader when known."""
        ...

    async def close(self) -> None: ...
