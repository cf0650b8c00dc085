"""Multipart uploads through boto3 against a real cluster: every operation and its errors,
partNumber and ranged reads across parts, garbage collection of part blobs (checked on the
storage nodes themselves), checksums, listing pages, and the sweeper of abandoned uploads."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
import zlib

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.cluster_harness import ROOT, free_port
from tests.harness.eventually import eventually
from tests.integration.internals import ClusterInternals

pytestmark = pytest.mark.integration

MIB = 1024**2
PART = 5 * MIB


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def mp_etag(*parts: bytes) -> str:
    return '"' + hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f'-{len(parts)}"'


def error(exc: pytest.ExceptionInfo) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def internals(cluster) -> ClusterInternals:
    return ClusterInternals(cluster)


def start_upload(s3, bucket: str, key: str = "obj", **kw) -> str:
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]


def put_parts(s3, bucket: str, key: str, uid: str, bodies: list[bytes], **kw) -> list[dict]:
    out = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=body, **kw)
        out.append({"PartNumber": n, "ETag": r["ETag"]})
    return out


def finish(s3, bucket, key, uid, parts, **kw):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, **kw)


@pytest.fixture(scope="module")
def three_parts() -> list[bytes]:
    return [os.urandom(PART), os.urandom(PART + 3), os.urandom(1000)]


# --- the whole life of an upload ------------------------------------------------------------------


def test_create_upload_complete_and_read_back(s3, bucket, three_parts):
    uid = start_upload(s3, bucket, "dir/obj", ContentType="text/x-test", Metadata={"color": "blue"},
                       CacheControl="no-cache", Tagging="team=storage&tier=gold")
    parts = put_parts(s3, bucket, "dir/obj", uid, three_parts)
    assert [p["ETag"] for p in parts] == [f'"{md5(b)}"' for b in three_parts]
    done = finish(s3, bucket, "dir/obj", uid, parts)
    assert done["ETag"] == mp_etag(*three_parts) and done["Key"] == "dir/obj" and done["Bucket"] == bucket
    got = s3.get_object(Bucket=bucket, Key="dir/obj")
    assert got["Body"].read() == b"".join(three_parts)
    assert got["ETag"] == mp_etag(*three_parts) and got["ContentType"] == "text/x-test"
    assert got["Metadata"] == {"color": "blue"} and got["CacheControl"] == "no-cache"
    tags = s3.get_object_tagging(Bucket=bucket, Key="dir/obj")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "storage"), ("tier", "gold")]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("dir/obj", sum(map(len, three_parts)),
                                                                    mp_etag(*three_parts))]
    with pytest.raises(ClientError) as e:  # the upload is gone once completed
        s3.list_parts(Bucket=bucket, Key="dir/obj", UploadId=uid)
    assert error(e) == ("NoSuchUpload", 404)


def test_parts_are_blobs_of_their_own_spread_over_nodes(s3, bucket, internals, three_parts):
    uid = start_upload(s3, bucket)
    finish(s3, bucket, "obj", uid, put_parts(s3, bucket, "obj", uid, three_parts))
    v = internals.version(bucket, "obj")
    assert v.placement == () and [p.number for p in v.parts] == [1, 2, 3]
    assert len({p.version_id for p in v.parts}) == 3 and all(len(p.placement) == 3 for p in v.parts)
    assert internals.blobs_present(v.blob_refs()) == 9
    uid = start_upload(s3, bucket, "many")
    put_parts(s3, bucket, "many", uid, [b"%d" % i for i in range(8)])
    placements = {p.placement for p in internals.parts(bucket, "many", uid)}
    assert len({n for pl in placements for n in pl}) > 3  # placed part by part, not by key
    s3.abort_multipart_upload(Bucket=bucket, Key="many", UploadId=uid)


def test_upload_file_with_a_small_multipart_threshold(s3, bucket, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(12 * MIB + 5))
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(src), bucket, "big/file.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == 12 * MIB + 5 and head["ETag"].endswith('-3"')
    dst = tmp_path / "dst.bin"
    s3.download_file(bucket, "big/file.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == src.read_bytes()


def test_overwriting_a_multipart_object_leaves_its_parts_to_garbage_collection(s3, bucket, internals,
                                                                              three_parts):
    """The replaced parts stay until the storage nodes' GC grace (a minute on the session cluster) has passed,
    so a GET streaming from them finishes (their collection: test_s3_versioning_gc)."""
    uid = start_upload(s3, bucket)
    finish(s3, bucket, "obj", uid, put_parts(s3, bucket, "obj", uid, three_parts[1:]))
    refs = internals.version(bucket, "obj").blob_refs()
    assert internals.blobs_present(refs) == 6
    body = s3.get_object(Bucket=bucket, Key="obj")["Body"]
    first = body.read(1024)
    s3.put_object(Bucket=bucket, Key="obj", Body=b"small now")
    assert len(first) + len(body.read()) == sum(len(p) for p in three_parts[1:])  # the old stream finishes
    assert internals.blobs_present(refs) == 6
    s3.delete_object(Bucket=bucket, Key="obj")


# --- parts: replacing, collecting, aborting -------------------------------------------------------


def test_reuploading_a_part_replaces_it_and_collects_the_old_blob(s3, bucket, internals):
    uid = start_upload(s3, bucket)
    put_parts(s3, bucket, "obj", uid, [b"first version"])
    (old,) = internals.parts(bucket, "obj", uid)
    r = s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=1, Body=b"second version")
    listed = s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, r["ETag"], 14)]
    eventually(lambda: internals.blobs_present([(old.version_id, old.placement)]) == 0, 15.0, message="old part blob deletion")
    finish(s3, bucket, "obj", uid, [{"PartNumber": 1, "ETag": r["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"second version"


def test_parts_left_out_of_the_completion_are_collected(s3, bucket, internals):
    uid = start_upload(s3, bucket)
    parts = put_parts(s3, bucket, "obj", uid, [os.urandom(PART), b"two", b"three"])
    refs = {p.number: (p.version_id, p.placement) for p in internals.parts(bucket, "obj", uid)}
    finish(s3, bucket, "obj", uid, [parts[0], parts[2]])
    assert s3.head_object(Bucket=bucket, Key="obj")["ContentLength"] == PART + 5
    eventually(lambda: internals.blobs_present([refs[2]]) == 0, 15.0, message="the unlisted part's blobs to go")
    assert internals.blobs_present([refs[1], refs[3]]) == 6


def test_delete_bucket_discards_uploads_in_progress_and_their_blobs(s3, internals):
    name = f"uploads-only-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    uid = start_upload(s3, name)
    put_parts(s3, name, "obj", uid, [os.urandom(300 * 1024), b"tail"])
    other = start_upload(s3, name, "other")
    refs = [(p.version_id, p.placement) for p in internals.parts(name, "obj", uid)]
    assert internals.blobs_present(refs) == 6
    r = s3.delete_bucket(Bucket=name)  # as S3: uploads in progress do not make a bucket non-empty
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert e.value.response["Error"]["Code"] in ("404", "NoSuchBucket")
    eventually(lambda: internals.blobs_present(refs) == 0, 15.0, message="discarded uploads' blobs to go")
    s3.create_bucket(Bucket=name)  # the name is free again, and the old uploads are gone
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    for upload_id, key in ((uid, "obj"), (other, "other")):
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket=name, Key=key, UploadId=upload_id)
        assert error(e) == ("NoSuchUpload", 404)
    s3.delete_bucket(Bucket=name)


def test_versions_and_delete_markers_still_make_a_bucket_non_empty(s3, bucket):
    start_upload(s3, bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")  # a delete marker over a version
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert error(e) == ("BucketNotEmpty", 409)
    version = s3.list_object_versions(Bucket=bucket)["Versions"][0]["VersionId"]
    s3.delete_object(Bucket=bucket, Key="gone", VersionId=version)  # only the marker is left
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert error(e) == ("BucketNotEmpty", 409)


def test_abort_deletes_every_part_blob(s3, bucket, internals):
    uid = start_upload(s3, bucket)
    put_parts(s3, bucket, "obj", uid, [os.urandom(300 * 1024), b"tail"])
    refs = [(p.version_id, p.placement) for p in internals.parts(bucket, "obj", uid)]
    assert internals.blobs_present(refs) == 6
    r = s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    eventually(lambda: internals.blobs_present(refs) == 0, 15.0, message="aborted parts' blobs to go")
    for call in (lambda: s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid),
                 lambda: s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid),
                 lambda: s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=1, Body=b"x"),
                 lambda: finish(s3, bucket, "obj", uid, [{"PartNumber": 1, "ETag": '"x"'}])):
        with pytest.raises(ClientError) as e:
            call()
        assert error(e) == ("NoSuchUpload", 404)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_upload_part_errors(s3, bucket):
    uid = start_upload(s3, bucket)
    for n in (0, 10001):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=n, Body=b"x")
        assert error(e) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="other-key", UploadId=uid, PartNumber=1, Body=b"x")
    assert error(e) == ("NoSuchUpload", 404)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=1, Body=b"x",
                       ContentMD5=base64.b64encode(hashlib.md5(b"y").digest()).decode())
    assert error(e) == ("BadDigest", 400)
    assert s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid).get("Parts", []) == []
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=f"no-such-{uuid.uuid4().hex[:8]}", Key="k")
    assert error(e) == ("NoSuchBucket", 404)
    s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid)


# --- completion errors and idempotence ------------------------------------------------------------


def test_complete_validation_errors(s3, bucket):
    uid = start_upload(s3, bucket)
    parts = put_parts(s3, bucket, "obj", uid, [b"a" * 100, b"b" * 100, b"c"])
    cases = [
        ([parts[1], parts[0]], ("InvalidPartOrder", 400)),
        ([parts[0], parts[0]], ("InvalidPartOrder", 400)),
        ([parts[0], {"PartNumber": 2, "ETag": f'"{md5(b"nope")}"'}], ("InvalidPart", 400)),
        ([parts[0], {"PartNumber": 7, "ETag": parts[1]["ETag"]}], ("InvalidPart", 400)),
        ([parts[0], parts[1]], ("EntityTooSmall", 400)),
        ([], ("MalformedXML", 400)),
    ]
    for listed, want in cases:
        with pytest.raises(ClientError) as e:
            finish(s3, bucket, "obj", uid, listed)
        assert error(e) == want, listed
    with pytest.raises(ClientError) as e:
        finish(s3, bucket, "obj", "no-such-upload", parts[:1])
    assert error(e) == ("NoSuchUpload", 404)
    assert len(s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid)["Parts"]) == 3  # nothing changed
    done = finish(s3, bucket, "obj", uid, [parts[2]])  # a single small part is a valid object
    assert done["ETag"] == mp_etag(b"c")


def test_malformed_complete_body(s3, bucket, cluster):
    uid = start_upload(s3, bucket)
    put_parts(s3, bucket, "obj", uid, [b"x"])

    def send_body(params, **kw):
        params["body"] = b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber></Part>"

    s3.meta.events.register("before-call.s3.CompleteMultipartUpload", send_body)
    try:
        with pytest.raises(ClientError) as e:
            finish(s3, bucket, "obj", uid, [{"PartNumber": 1, "ETag": '"x"'}])
    finally:
        s3.meta.events.unregister("before-call.s3.CompleteMultipartUpload", send_body)
    assert error(e) == ("MalformedXML", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid)


def test_completing_twice_succeeds_while_the_object_is_current(s3, bucket):
    uid = start_upload(s3, bucket)
    parts = put_parts(s3, bucket, "obj", uid, [b"only part"])
    first = finish(s3, bucket, "obj", uid, parts)
    again = finish(s3, bucket, "obj", uid, parts)
    assert again["ETag"] == first["ETag"] == mp_etag(b"only part")
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"only part"
    s3.put_object(Bucket=bucket, Key="obj", Body=b"replaced")
    with pytest.raises(ClientError) as e:
        finish(s3, bucket, "obj", uid, parts)
    assert error(e) == ("NoSuchUpload", 404)


def test_complete_with_write_conditions_and_in_a_versioned_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"exists")
    uid = start_upload(s3, bucket)
    parts = put_parts(s3, bucket, "obj", uid, [b"new bytes"])
    with pytest.raises(ClientError) as e:
        finish(s3, bucket, "obj", uid, parts, IfNoneMatch="*")
    assert error(e) == ("PreconditionFailed", 412)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    done = finish(s3, bucket, "obj", uid, parts)  # the upload survived the failed condition
    assert done["VersionId"] and done["VersionId"] != "null"
    got = s3.get_object(Bucket=bucket, Key="obj", VersionId=done["VersionId"])
    assert got["Body"].read() == b"new bytes" and got["ETag"] == mp_etag(b"new bytes")
    assert s3.get_object(Bucket=bucket, Key="obj", VersionId="null")["Body"].read() == b"exists"


# --- reads: partNumber and ranges across parts ----------------------------------------------------


def test_part_number_reads(s3, bucket, three_parts):
    uid = start_upload(s3, bucket)
    finish(s3, bucket, "obj", uid, put_parts(s3, bucket, "obj", uid, three_parts))
    total, offset = sum(map(len, three_parts)), 0
    for n, body in enumerate(three_parts, 1):
        got = s3.get_object(Bucket=bucket, Key="obj", PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206 and got["PartsCount"] == 3
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(body) - 1}/{total}"
        assert got["Body"].read() == body and got["ETag"] == mp_etag(*three_parts)
        head = s3.head_object(Bucket=bucket, Key="obj", PartNumber=n)
        assert head["ContentLength"] == len(body) and head["PartsCount"] == 3
        offset += len(body)
    for n, want in ((4, ("InvalidPartNumber", 416)), (0, ("InvalidArgument", 400))):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="obj", PartNumber=n)
        assert error(e) == want
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="obj", PartNumber=4)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="obj", PartNumber=1, Range="bytes=0-1")
    assert error(e) == ("InvalidRequest", 400)


def test_part_number_of_a_single_part_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)
    assert got["Body"].read() == b"0123456789" and got["ContentRange"] == "bytes 0-9/10"
    assert "PartsCount" not in got
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="plain", PartNumber=2)
    assert error(e) == ("InvalidPartNumber", 416)


def test_ranges_across_part_boundaries(s3, bucket, three_parts):
    uid = start_upload(s3, bucket)
    finish(s3, bucket, "obj", uid, put_parts(s3, bucket, "obj", uid, three_parts))
    whole = b"".join(three_parts)
    b1, b2 = len(three_parts[0]), len(three_parts[0]) + len(three_parts[1])
    for rng, (lo, hi) in [
        (f"bytes={b1 - 10}-{b1 + 9}", (b1 - 10, b1 + 9)),  # across 1|2
        (f"bytes={b1 - 1}-{b2}", (b1 - 1, b2)),  # the whole of part 2 plus one byte each side
        (f"bytes={b1}-{b1}", (b1, b1)),  # the first byte of a part
        ("bytes=-1500", (len(whole) - 1500, len(whole) - 1)),  # suffix across 2|3
        (f"bytes={b2 + 5}-", (b2 + 5, len(whole) - 1)),
    ]:
        got = s3.get_object(Bucket=bucket, Key="obj", Range=rng)
        assert got["Body"].read() == whole[lo : hi + 1], rng
        assert got["ContentRange"] == f"bytes {lo}-{hi}/{len(whole)}"


# --- UploadPartCopy ---------------------------------------------------------------------------------


def test_upload_part_copy_with_ranges_and_conditions(s3, bucket, three_parts):
    src = os.urandom(PART + 1234)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    src_etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    uid = start_upload(s3, bucket, "copy")
    r1 = s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange=f"bytes=0-{PART - 1}")
    assert r1["CopyPartResult"]["ETag"] == f'"{md5(src[:PART])}"'
    r3 = s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=uid, PartNumber=3,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes={PART}-{len(src) - 1}", CopySourceIfMatch=src_etag)
    # A whole multipart object as the source of a part: streamed across its parts.
    mp = start_upload(s3, bucket, "mp-src")
    finish(s3, bucket, "mp-src", mp, put_parts(s3, bucket, "mp-src", mp, three_parts))
    r2 = s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=uid, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "mp-src"})
    assert r2["CopyPartResult"]["ETag"] == f'"{md5(b"".join(three_parts))}"'
    for kw, want in [
        ({"CopySourceIfMatch": '"0123"'}, ("PreconditionFailed", 412)),
        ({"CopySourceIfNoneMatch": src_etag}, ("PreconditionFailed", 412)),
        ({"CopySourceRange": f"bytes=0-{len(src)}"}, ("InvalidArgument", 400)),
        ({"CopySourceRange": "bytes=5-"}, ("InvalidArgument", 400)),
    ]:
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=uid, PartNumber=4,
                                CopySource={"Bucket": bucket, "Key": "src"}, **kw)
        assert error(e) == want, kw
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="copy", UploadId=uid, PartNumber=4,
                            CopySource={"Bucket": bucket, "Key": "missing"})
    assert error(e) == ("NoSuchKey", 404)
    parts = [{"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]} for n, r in ((1, r1), (2, r2), (3, r3))]
    finish(s3, bucket, "copy", uid, parts)
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == src[:PART] + b"".join(three_parts) + src[PART:]


# --- checksums --------------------------------------------------------------------------------------


def test_composite_sha256_checksum(s3, bucket):
    bodies = [os.urandom(PART), b"last"]
    uid = start_upload(s3, bucket, ChecksumAlgorithm="SHA256")
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=n, Body=body, ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    listed = s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid)
    assert listed["ChecksumAlgorithm"] == "SHA256"
    assert listed["Parts"][1]["ChecksumSHA256"] == parts[1]["ChecksumSHA256"]
    done = finish(s3, bucket, "obj", uid, parts)
    joined = b"".join(hashlib.sha256(b).digest() for b in bodies)
    want = base64.b64encode(hashlib.sha256(joined).digest()).decode() + "-2"
    assert done["ChecksumSHA256"] == want
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == want
    assert s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")["Body"].read() == b"".join(bodies)


def test_full_object_crc32_checksum_is_verified_on_download(s3, bucket):
    bodies = [os.urandom(PART), os.urandom(777)]
    uid = start_upload(s3, bucket, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key="obj", UploadId=uid, PartNumber=n, Body=body, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    want = base64.b64encode(zlib.crc32(b"".join(bodies)).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as e:
        finish(s3, bucket, "obj", uid, parts, ChecksumCRC32=base64.b64encode(b"\0\0\0\1").decode(),
               ChecksumType="FULL_OBJECT")
    assert error(e) == ("BadDigest", 400)
    done = finish(s3, bucket, "obj", uid, parts, ChecksumCRC32=want, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC32"] == want and done["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")  # botocore verifies the body
    assert got["ChecksumCRC32"] == want and got["Body"].read() == b"".join(bodies)


# --- listing ------------------------------------------------------------------------------------------


def test_list_parts_pages(s3, bucket):
    uid = start_upload(s3, bucket)
    put_parts(s3, bucket, "obj", uid, [b"1", b"22", b"333"])
    p1 = s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in p1["Parts"]] == [1, 2]
    assert p1["IsTruncated"] and p1["NextPartNumberMarker"] == 2 and p1["MaxParts"] == 2
    p2 = s3.list_parts(Bucket=bucket, Key="obj", UploadId=uid, PartNumberMarker=p1["NextPartNumberMarker"])
    assert [(p["PartNumber"], p["Size"]) for p in p2["Parts"]] == [(3, 3)] and not p2["IsTruncated"]
    pages = s3.get_paginator("list_parts").paginate(Bucket=bucket, Key="obj", UploadId=uid,
                                                    PaginationConfig={"PageSize": 1})
    assert [p["PartNumber"] for page in pages for p in page.get("Parts", [])] == [1, 2, 3]
    s3.abort_multipart_upload(Bucket=bucket, Key="obj", UploadId=uid)


def test_list_multipart_uploads_pages_and_prefixes(s3, bucket):
    made = [(k, start_upload(s3, bucket, k)) for k in ("a", "a", "b/x", "b/y", "c", "d/e/f")]
    want = sorted(made)
    assert [(u["Key"], u["UploadId"]) for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == want
    p1 = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=3)
    assert [(u["Key"], u["UploadId"]) for u in p1["Uploads"]] == want[:3] and p1["IsTruncated"]
    assert (p1["NextKeyMarker"], p1["NextUploadIdMarker"]) == want[2]
    p2 = s3.list_multipart_uploads(Bucket=bucket, KeyMarker=p1["NextKeyMarker"],
                                   UploadIdMarker=p1["NextUploadIdMarker"])
    assert [(u["Key"], u["UploadId"]) for u in p2["Uploads"]] == want[3:] and not p2["IsTruncated"]
    paged = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    assert [(u["Key"], u["UploadId"]) for page in paged for u in page.get("Uploads", [])] == want
    rolled = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in rolled["Uploads"]] == ["a", "a", "c"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["b/", "d/"]
    under = s3.list_multipart_uploads(Bucket=bucket, Prefix="b/")
    assert [u["Key"] for u in under["Uploads"]] == ["b/x", "b/y"]
    paged = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Delimiter="/",
                                                                PaginationConfig={"PageSize": 1})
    seen = [(u["Key"] for u in page.get("Uploads", [])) for page in paged]
    assert [k for keys in seen for k in keys] == ["a", "a", "c"]
    with pytest.raises(ClientError) as e:
        s3.list_multipart_uploads(Bucket=bucket, MaxUploads=-1)
    assert error(e)[0] == "InvalidArgument"
    for key, uid in made:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)


# --- abandoned uploads ----------------------------------------------------------------------------------


def test_abandoned_uploads_are_aborted_by_a_gateway_sweeper(cluster, s3, bucket, internals, tmp_path):
    uid = start_upload(s3, bucket, "abandoned")
    put_parts(s3, bucket, "abandoned", uid, [b"left behind"])
    refs = [(p.version_id, p.placement) for p in internals.parts(bucket, "abandoned", uid)]
    port = free_port()
    cfg = tmp_path / "gw.json"
    cfg.write_text(json.dumps({
        "gateway_id": "sweeper", "secret": internals.secret, "metadata": internals.meta_addrs,
        "host": "127.0.0.1", "port": port, "upload_expiry_seconds": 0.5, "upload_sweep_seconds": 0.2,
    }))
    log = open(tmp_path / "gw.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "gateway", "--config", str(cfg)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    return True
            except OSError:
                return False
        eventually(healthy, 15.0, message="the sweeping gateway to start")
        eventually(lambda: not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), 15.0, message="the sweep")
        eventually(lambda: internals.blobs_present(refs) == 0, 15.0, message="the abandoned part's blobs to go")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="abandoned", UploadId=uid)
    assert error(e) == ("NoSuchUpload", 404)
    assert "aborted multipart upload" in (tmp_path / "gw.log").read_text()
