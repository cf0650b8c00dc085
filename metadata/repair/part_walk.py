"""A walk over the parts of uploads in progress placed on a set of nodes (lost nodes for
repair, draining nodes for rebalancing) that resumes where the last round stopped. Pure.

Each planning round examines at most ``scan`` parts. Starting every round at the first
part of the first node, parts that give no task (nothing readable left, busy, no target
with room) would fill ``scan`` round after round and hide the parts behind them for good.
So the walk keeps the position of the last part examined and the next round starts right
after it, going through the nodes in order and their parts in order (upload, then part
number), and wrapping around to the beginning: every part is examined once every
``parts / scan`` rounds; resuming costs a bisection into the node's uploads, not a pass
over them. A position whose node, upload or part is gone still orders the
rest (the walk goes on from the next one). The state is one position: bounded.
"""
from __future__ import annotations

import bisect
from typing import Iterable, Iterator

from metadata.api.upload_records import MultipartUpload, UploadedPart
from metadata.fsm.uploads import UploadStore

Position = tuple[str, tuple[str, str, str], int]  # node, upload (bucket, key, upload id), part number


class PartWalk:
    """See the module docstring."""

    def __init__(self) -> None:
        self.at: Position | None = None  # the last part examined

    def parts(self, uploads: UploadStore, nodes: Iterable[str]) -> Iterator[tuple[MultipartUpload, UploadedPart]]:
        """Each part on ``nodes`` once, starting after the last one a consumer took (a part
        counts as taken once the consumer asks for the one after it, so a consumer that
        stops at its limit sees the part it did not examine first next time). Do not apply
        commands while iterating."""
        order = sorted(set(nodes))
        at = self.at
        if not order or at is None:
            yield from self._from(uploads, order, None, None)
            return
        i = bisect.bisect_left(order, at[0])
        yield from self._from(uploads, order[i:] + order[:i], at, None)  # after ``at``, around to its node
        if i < len(order) and order[i] == at[0]:
            yield from self._from(uploads, [at[0]], None, at)  # then its node's parts up to it

    def _from(self, uploads: UploadStore, nodes: list[str], after: Position | None,
              upto: Position | None) -> Iterator[tuple[MultipartUpload, UploadedPart]]:
        for node in nodes:
            held = uploads.by_node.get(node)
            if held is None:
                continue
            resume = after is not None and node == after[0]
            for upload in (held.irange(minimum=after[1]) if resume else held):  # sorted: no sort per round
                bucket, key, upload_id = upload
                up = uploads.buckets.get(bucket, {}).get((key, upload_id))
                if up is None:
                    continue
                for number in sorted(up.parts):
                    pos = (node, upload, number)
                    if after is not None and node == after[0] and pos <= after:
                        continue
                    if upto is not None and pos > upto:
                        return
                    part = up.parts[number]
                    if node in part.part.placement:
                        yield up.info, part
                        self.at = pos
