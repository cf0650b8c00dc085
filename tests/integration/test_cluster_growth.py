"""``objstore up`` on an existing data dir with a larger ``--storage-nodes``, on real
processes: the cluster started again with one more storage node keeps every object, the
new node joins the ring ``up`` by itself (no ``node add``), the rebalancer moves only its
share to it, and every object reads back byte-identical.
"""
from __future__ import annotations

import random

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3
from tests.integration.test_membership import FLAGS, node_rows, placements, put_objects, read_all, wait_balanced
from tests.integration.test_repair import create_bucket

pytestmark = pytest.mark.integration


def test_up_again_with_more_storage_nodes_adds_them(tmp_path):
    with LocalCluster(tmp_path / "data", storage_nodes=3, extra_args=FLAGS) as cluster:
        s3 = make_s3(cluster)
        create_bucket(s3, "grow", "replica:2")
        data = put_objects(s3, "grow", 40, random.Random(8))
        before = placements(cluster, "grow", data)
    with LocalCluster(tmp_path / "data", storage_nodes=4, extra_args=FLAGS) as cluster:
        s3 = make_s3(cluster)
        assert cluster.pid_of("s4")
        assert {n: r["state"] for n, r in node_rows(cluster).items()} == {f"s{i}": "up" for i in range(1, 5)}
        assert read_all(s3, "grow", data) == []
        wait_balanced(cluster, 120)  # a bound for a loaded machine, not a speed (moves seen at ~26 KB/s in a full run)
        after = placements(cluster, "grow", data)
        assert all(set(after[k]) - set(before[k]) <= {"s4"} for k in data)  # moves go to the new node only
        assert any("s4" in p for p in after.values()) and all(len(set(p)) == 2 for p in after.values())
        assert read_all(s3, "grow", data) == []
        s3.put_object(Bucket="grow", Key="new", Body=b"after growing")
        assert s3.get_object(Bucket="grow", Key="new")["Body"].read() == b"after growing"
