"""Majority quorums over a set of voters (one configuration at a time).

Pure functions: the committed index of a set of match indexes and the outcome of an
election. An empty voter set commits nothing and wins no election.
"""
from __future__ import annotations

import enum
from typing import Iterable, Mapping


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def quorum_size(n_voters: int) -> int:
    return n_voters // 2 + 1


def committed_index(matches: Iterable[int]) -> int:
    """The highest index acknowledged by a majority, given each voter's match index
    (0 when there are no voters)."""
    idx = sorted(matches, reverse=True)
    if not idx:
        return 0
    return idx[quorum_size(len(idx)) - 1]


def vote_result(voters: "frozenset[str] | set[str]", votes: Mapping[str, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    if not voters:
        return VoteResult.LOST
    q = quorum_size(len(voters))
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected < q:
        return VoteResult.LOST
    return VoteResult.PENDING
