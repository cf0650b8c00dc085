"""A register workload through the S3 gateway (boto3), for the quorum and one checkers.

Writers PUT unique bodies (``c<client>.<n>``) to a few keys, several writers per key, and
record the commit index the gateway reports (``x-objstore-commit-index``); readers GET at
a level each (``x-objstore-consistency``; the read's ``input`` records it, :func:`at_level`). Each worker is a thread with its own boto3 client
(no retries, so a 503 is seen as such) running one request at a time; ``call``/``ret`` are
read from one monotonic clock around the whole request.

Outcomes: a write answered 2xx is acknowledged; 503, 500, a timeout or a connection error
is unknown (the version may have committed); another 4xx is a definite failure. A read
answered 2xx returns the body, NoSuchKey returns None; any other failure is left out (a
read that did not complete constrains nothing).
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from tests.harness.s3_headers import extra_headers, response_headers
from tests.linearizability.history import Op

UNKNOWN_CODES = {"ServiceUnavailable", "InternalError", "SlowDown", "RequestTimeout", "InsufficientReplicas", "503",
                 "500"}


@dataclass(frozen=True)
class Plan:
    bucket: str
    keys: Sequence[str]
    writers: int
    readers: Sequence[str]  # one reader per entry, reading at that level
    seconds: float
    write_quorum: int = 0  # 0: the bucket's


class Workload:
    """Runs a :class:`Plan`; ``history`` holds every completed or unknown operation."""

    def __init__(self, make_client: Callable[[], Any], plan: Plan, seed: int) -> None:
        self.make_client = make_client
        self.plan = plan
        self.seed = seed
        self.history: list[Op] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def _record(self, op: Op) -> None:
        with self._lock:
            self.history.append(op)

    def _writer(self, n: int) -> None:
        rng = random.Random(f"{self.seed}/w{n}")
        s3 = self.make_client()
        headers = {"x-objstore-write-quorum": str(self.plan.write_quorum)} if self.plan.write_quorum else {}
        count = 0
        with extra_headers(s3, "PutObject", headers):
            while not self.stop.is_set():
                key = rng.choice(list(self.plan.keys))
                count += 1
                value = f"c{n}.{count}"
                call = time.monotonic()
                try:
                    resp = s3.put_object(Bucket=self.plan.bucket, Key=key, Body=value.encode())
                    index = int(response_headers(resp)["x-objstore-commit-index"])
                    self._record(Op(n, "put", key, value, index, call, time.monotonic(), True))
                except ClientError as err:
                    code = err.response["Error"]["Code"]
                    ok = None if code in UNKNOWN_CODES else False
                    self._record(Op(n, "put", key, value, None, call, time.monotonic(), ok))
                except BotoCoreError:
                    self._record(Op(n, "put", key, value, None, call, time.monotonic(), None))
                time.sleep(rng.uniform(0, 0.05))

    def _reader(self, n: int) -> None:
        rng = random.Random(f"{self.seed}/r{n}")
        s3 = self.make_client()
        level = self.plan.readers[n]
        with extra_headers(s3, "GetObject", {"x-objstore-consistency": level}):
            while not self.stop.is_set():
                key = rng.choice(list(self.plan.keys))
                call = time.monotonic()
                try:
                    resp = s3.get_object(Bucket=self.plan.bucket, Key=key)
                    value: str | None = resp["Body"].read().decode()
                except ClientError as err:
                    if err.response["Error"]["Code"] != "NoSuchKey":
                        continue
                    value = None
                except BotoCoreError:
                    continue
                self._record(Op(100 + n, "get", key, level, value, call, time.monotonic(), True))
                time.sleep(rng.uniform(0, 0.02))

    def run(self, during: Callable[[], None] | None = None) -> list[Op]:
        """Run the workload for the plan's seconds (``during`` runs meanwhile, in this thread);
        returns the history."""
        threads = [threading.Thread(target=self._writer, args=(i,), daemon=True) for i in range(self.plan.writers)]
        threads += [threading.Thread(target=self._reader, args=(i,), daemon=True)
                    for i in range(len(self.plan.readers))]
        for t in threads:
            t.start()
        ends = time.monotonic() + self.plan.seconds
        try:
            if during is not None:
                during()
            while time.monotonic() < ends:
                time.sleep(0.05)
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=30)
        return list(self.history)


def at_level(history: Sequence[Op], level: str) -> list[Op]:
    """The writes of ``history`` and its reads at ``level`` (a read's ``input`` is its level)."""
    return [op for op in history if op.kind != "get" or op.input == level]
