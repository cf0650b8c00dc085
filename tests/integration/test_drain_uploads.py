"""Draining a node holding parts of multipart uploads in progress, on real processes.

Two uploads in progress (replica:3 and ec:2+1) have parts on every node; the node holding
the most parts is drained: every part moves off it (``objstore node list`` shows no key and
no upload part left on it), ``node remove`` is refused before and accepted without
``--force`` after, the removed node is SIGKILLed, and both uploads still complete with
byte-identical objects. ``ok-to-stop`` counts the parts (there is no object): yes for a
node holding replica:3 parts only (W = 2 of 3 stay), no (CLI exit 1, HTTP 412, with the
parts counted) for a holder of an ec:2+1 part (W = 3: every shard is needed).
"""
from __future__ import annotations

import json
import random
import time

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3
from tests.integration.test_membership import FLAGS, node_cli, node_rows, ok_to_stop_http
from tests.integration.test_repair import create_bucket

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def test_drain_moves_parts_of_uploads_in_progress_and_they_complete(tmp_path):
    rng = random.Random(11)
    with LocalCluster(tmp_path / "data", storage_nodes=5, extra_args=FLAGS) as cluster:
        s3 = make_s3(cluster)
        uploads = {}
        for bucket, policy, sizes in (("rep3", "replica:3", (5 * MIB, 5 * MIB, 300_000)),
                                      ("ec21", "ec:2+1", (5 * MIB, 100_000))):
            create_bucket(s3, bucket, policy)
            uid = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
            parts = [rng.randbytes(n) for n in sizes]
            etags = [s3.upload_part(Bucket=bucket, Key="big", UploadId=uid, PartNumber=i + 1, Body=body)["ETag"]
                     for i, body in enumerate(parts)]
            uploads[bucket] = (uid, parts, etags)
            if bucket == "rep3":  # only replica:3 parts so far: any holder may stop
                rows = node_rows(cluster)
                holder = next(n for n in rows if rows[n]["upload_parts"])
                yes = node_cli(cluster, "ok-to-stop", holder, "--json")
                assert yes.returncode == 0 and json.loads(yes.stdout)["upload_parts_checked"] >= 1, yes.stdout
                assert ok_to_stop_http(cluster, holder) == 200
        answers = {n: node_cli(cluster, "ok-to-stop", n, "--json") for n in node_rows(cluster)}
        partner, no = next((n, a) for n, a in answers.items() if a.returncode == 1)
        d = json.loads(no.stdout)
        assert not d["ok"] and d["upload_parts_below_write_quorum"] >= 1 and d["blobs_below_write_quorum"] == 0
        assert any(u.startswith("ec21/big ") for u in d["upload_sample"]), d
        assert ok_to_stop_http(cluster, partner) == 412
        rows = node_rows(cluster)
        node = max(rows, key=lambda n: rows[n]["upload_parts"])
        assert rows[node]["upload_parts"] >= 2, rows
        refused = node_cli(cluster, "remove", node)
        assert refused.returncode == 1 and "multipart uploads in progress" in refused.stderr, refused.stderr
        assert node_cli(cluster, "drain", node).returncode == 0
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed
        while (row := node_rows(cluster)[node])["upload_parts"] or row["keys"]:
            assert time.monotonic() < deadline, f"{node} was not drained: {row}"
            time.sleep(0.3)
        removed = node_cli(cluster, "remove", node)
        assert removed.returncode == 0 and "draining -> removed" in removed.stdout, removed.stderr
        cluster.kill_node(node)
        for bucket, (uid, parts, etags) in uploads.items():
            listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=uid)["Parts"]
            assert [p["ETag"] for p in listed] == etags
            s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
            assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(parts), bucket
