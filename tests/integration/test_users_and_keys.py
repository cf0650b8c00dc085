"""Users and keys: ``objstore key`` create/list/delete, and isolation between owners."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ops.cli import main as objstore_main
from tests.cluster_harness import ROOT
from tests.harness.eventually import eventually

pytestmark = pytest.mark.integration


def key_cli(cluster, *args: str) -> tuple[int, str, str]:
    """Run ``objstore key ...`` as a real process against the cluster's data dir."""
    proc = subprocess.run([sys.executable, "-m", "ops.cli", "key", *args, "--data-dir", str(cluster.data_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def create_key(cluster, capsys, name: str) -> tuple[str, str]:
    """``objstore key create NAME`` (in this process, for speed); returns (access key, secret)."""
    capsys.readouterr()
    assert objstore_main(["key", "create", name, "--data-dir", str(cluster.data_dir)]) == 0
    out = capsys.readouterr().out
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert fields["owner"].strip() == name
    return fields["access key"].strip(), fields["secret key"].strip()


def client(cluster, access_key: str, secret_key: str):
    return boto3.client("s3", endpoint_url=cluster.endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def code_of(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


@pytest.fixture
def users(cluster, capsys):
    """Two fresh users, alice and bob, each with a bucket holding one object."""
    suffix = uuid.uuid4().hex[:8]
    out = {}
    for name in ("alice", "bob"):
        user = f"{name}-{suffix}"
        s3 = client(cluster, *create_key(cluster, capsys, user))
        bucket = f"{name}-{suffix}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="doc.txt", Body=f"{name}'s data".encode())
        out[name] = (user, s3, bucket)
    yield out
    for user, s3, bucket in out.values():
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_key_create_list_delete(cluster, capsys):
    name = f"carol-{uuid.uuid4().hex[:8]}"
    rc, out, err = key_cli(cluster, "create", name)  # the real command, as a process
    assert rc == 0, err
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.strip().splitlines())}
    access_key, secret = fields["access key"], fields["secret key"]
    assert fields["owner"] == name and access_key.startswith("OBJ") and len(secret) >= 40
    s3 = client(cluster, access_key, secret)
    assert s3.list_buckets()["Owner"] == {"ID": name, "DisplayName": name}

    def cli(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = objstore_main(["key", *args, "--data-dir", str(cluster.data_dir)])
        captured = capsys.readouterr()
        return rc, captured.out, captured.err

    rc, out, _ = cli("list", "--json")
    listed = {k["access_key"]: k for k in json.loads(out)}
    assert listed[access_key] == {"access_key": access_key, "owner": name, "display_name": name}
    assert cluster.access_key in listed
    assert secret not in out
    rc, out, _ = cli("list")
    assert out.splitlines()[0].split()[:3] == ["ACCESS", "KEY", "OWNER"]
    assert any(line.split()[:2] == [access_key, name] for line in out.splitlines())
    assert secret not in out

    rc, out, err = cli("delete", access_key)
    assert rc == 0 and access_key in out, err
    # The gateway caches credentials for a few seconds; the key must stop working soon after.
    def refused() -> bool:
        try:
            s3.list_buckets()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidAccessKeyId"
            return True
        return False

    eventually(refused, 15, 0.2, message="the deleted key to stop working")
    rc, out, _ = cli("list", "--json")
    assert access_key not in {k["access_key"] for k in json.loads(out)}
    rc, _, err = cli("delete", access_key)
    assert rc == 1 and "no access key" in err


def test_key_create_rejects_bad_names(cluster, capsys):
    assert objstore_main(["key", "create", "bad name/with slash", "--data-dir", str(cluster.data_dir)]) == 2
    assert "user name" in capsys.readouterr().err


def test_key_cli_without_cluster(tmp_path, capsys):
    assert objstore_main(["key", "list", "--data-dir", str(tmp_path)]) == 2
    assert "no cluster found" in capsys.readouterr().err


def test_two_keys_of_one_user_share_buckets(cluster, capsys, users):
    user, _, bucket = users["alice"]
    second = client(cluster, *create_key(cluster, capsys, user))
    assert bucket in [b["Name"] for b in second.list_buckets()["Buckets"]]
    assert second.get_object(Bucket=bucket, Key="doc.txt")["Body"].read() == b"alice's data"


def test_unknown_key_and_wrong_secret(cluster):
    assert code_of(lambda: client(cluster, "OBJNOSUCHKEY0000", "x" * 40).list_buckets()) == (403, "InvalidAccessKeyId")
    assert code_of(lambda: client(cluster, cluster.access_key, "wrong-secret").list_buckets()) == (
        403, "SignatureDoesNotMatch")


def test_another_users_bucket_is_access_denied_for_every_operation(users):
    _, alice, a_bucket = users["alice"]
    _, bob, b_bucket = users["bob"]
    denied = (403, "AccessDenied")
    calls = {
        "HeadBucket": lambda: bob.head_bucket(Bucket=a_bucket),
        "GetBucketLocation": lambda: bob.get_bucket_location(Bucket=a_bucket),
        "ListObjects": lambda: bob.list_objects(Bucket=a_bucket),
        "ListObjectsV2": lambda: bob.list_objects_v2(Bucket=a_bucket),
        "PutObject": lambda: bob.put_object(Bucket=a_bucket, Key="bob-was-here", Body=b"x"),
        "PutObject (existing key)": lambda: bob.put_object(Bucket=a_bucket, Key="doc.txt", Body=b"x"),
        "GetObject": lambda: bob.get_object(Bucket=a_bucket, Key="doc.txt"),
        "GetObject (missing key)": lambda: bob.get_object(Bucket=a_bucket, Key="nothing"),
        "HeadObject": lambda: bob.head_object(Bucket=a_bucket, Key="doc.txt"),
        "DeleteObject": lambda: bob.delete_object(Bucket=a_bucket, Key="doc.txt"),
        "DeleteObjects": lambda: bob.delete_objects(Bucket=a_bucket, Delete={"Objects": [{"Key": "doc.txt"}]}),
        "DeleteBucket": lambda: bob.delete_bucket(Bucket=a_bucket),
        "CopyObject from it": lambda: bob.copy_object(Bucket=b_bucket, Key="stolen",
                                                      CopySource={"Bucket": a_bucket, "Key": "doc.txt"}),
        "CopyObject into it": lambda: bob.copy_object(Bucket=a_bucket, Key="planted",
                                                      CopySource={"Bucket": b_bucket, "Key": "doc.txt"}),
    }
    for name, call in calls.items():
        status, code = code_of(call)
        if name == "HeadObject" or name == "HeadBucket":
            assert status == 403, name  # HEAD answers carry no body, hence no code
        else:
            assert (status, code) == denied, name
    # Nothing changed on either side.
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=a_bucket)["Contents"]] == ["doc.txt"]
    assert alice.get_object(Bucket=a_bucket, Key="doc.txt")["Body"].read() == b"alice's data"
    assert [o["Key"] for o in bob.list_objects_v2(Bucket=b_bucket)["Contents"]] == ["doc.txt"]


def test_bucket_names_are_global(users):
    _, alice, a_bucket = users["alice"]
    _, bob, _ = users["bob"]
    assert code_of(lambda: bob.create_bucket(Bucket=a_bucket)) == (409, "BucketAlreadyExists")
    assert alice.head_bucket(Bucket=a_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_listings_show_only_the_callers_buckets_and_owner(users):
    a_user, alice, a_bucket = users["alice"]
    b_user, bob, b_bucket = users["bob"]
    a_list = alice.list_buckets()
    assert a_list["Owner"] == {"ID": a_user, "DisplayName": a_user}
    assert [b["Name"] for b in a_list["Buckets"]] == [a_bucket]
    b_list = bob.list_buckets()
    assert b_list["Owner"] == {"ID": b_user, "DisplayName": b_user}
    assert [b["Name"] for b in b_list["Buckets"]] == [b_bucket]
    v1 = alice.list_objects(Bucket=a_bucket)["Contents"]
    assert v1[0]["Owner"] == {"ID": a_user, "DisplayName": a_user}
    v2 = alice.list_objects_v2(Bucket=a_bucket, FetchOwner=True)["Contents"]
    assert v2[0]["Owner"] == {"ID": a_user, "DisplayName": a_user}
    assert "Owner" not in alice.list_objects_v2(Bucket=a_bucket)["Contents"][0]


def test_expected_bucket_owner(users):
    a_user, alice, a_bucket = users["alice"]
    b_user, _, _ = users["bob"]
    assert alice.get_object(Bucket=a_bucket, Key="doc.txt", ExpectedBucketOwner=a_user)["Body"].read() == b"alice's data"
    assert code_of(lambda: alice.get_object(Bucket=a_bucket, Key="doc.txt", ExpectedBucketOwner=b_user)) == (
        403, "AccessDenied")
    assert code_of(lambda: alice.put_object(Bucket=a_bucket, Key="new", Body=b"x", ExpectedBucketOwner=b_user)) == (
        403, "AccessDenied")
    assert code_of(lambda: alice.copy_object(Bucket=a_bucket, Key="new", CopySource={"Bucket": a_bucket, "Key": "doc.txt"},
                                             ExpectedSourceBucketOwner=b_user)) == (403, "AccessDenied")
    alice.copy_object(Bucket=a_bucket, Key="copied", CopySource={"Bucket": a_bucket, "Key": "doc.txt"},
                      ExpectedBucketOwner=a_user, ExpectedSourceBucketOwner=a_user)
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=a_bucket)["Contents"]] == ["copied", "doc.txt"]
