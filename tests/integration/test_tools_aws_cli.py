"""The real AWS CLI (`aws s3 sync`, `cp`, `ls`, `rm`) against a real cluster.

The CLI is configured only through environment variables and a temporary config file
(path-style addressing, us-east-1) plus ``--endpoint-url``; the user's own AWS
configuration is never read. Every step checks bytes and listings, not just exit codes.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from tests.integration.tools_support import (assert_same_tree, find_tool, make_tree, purge_bucket, read_tree, run,
                                             sizes_of, tool_env, write_tree)

pytestmark = pytest.mark.integration


class AwsCli:
    def __init__(self, cluster, home: Path, s3_config: str = "") -> None:
        self.binary = find_tool("aws", "run ops/install.sh")
        self.endpoint = cluster.endpoint
        config = home / "aws-config"
        home.mkdir(parents=True, exist_ok=True)
        config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n" + s3_config)
        self.env = tool_env(home, AWS_ACCESS_KEY_ID=cluster.access_key, AWS_SECRET_ACCESS_KEY=cluster.secret_key,
                            AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(config),
                            AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"), PYTHONIOENCODING="utf-8", AWS_MAX_ATTEMPTS="1")

    def __call__(self, *args: str, check: bool = True):
        return run([self.binary, "--endpoint-url", self.endpoint, *args], self.env, check=check)

    def s3(self, *args: str, check: bool = True):
        return self("s3", *args, "--no-progress", check=check) if args[0] in ("sync", "cp", "mv") \
            else self("s3", *args, check=check)

    def listing(self, url: str) -> dict[str, int]:
        """`aws s3 ls --recursive` as {key relative to the url's prefix: size}."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        out = self.s3("ls", "--recursive", url).stdout
        result = {}
        for line in out.splitlines():
            _date, _time, size, key = line.split(maxsplit=3)
            assert key.startswith(prefix), line
            result[key[len(prefix):].lstrip("/") if prefix else key] = int(size)
        return result


def transferred(out: str, verb: str, bucket: str) -> set[str]:
    """Keys named by `<verb>: ... s3://bucket/key` lines of aws s3 output."""
    keys = set()
    marker = f"s3://{bucket}/"
    for line in out.splitlines():
        if line.startswith(f"{verb}: "):
            keys.add(line[line.rindex(marker) + len(marker):])
    return keys


@pytest.fixture
def bucket_name(s3):
    name = f"awscli-{uuid.uuid4().hex[:10]}"
    yield name
    purge_bucket(s3, name)


def test_aws_s3_sync_up_incremental_delete_and_down(cluster, s3, bucket_name, tmp_path):
    aws = AwsCli(cluster, tmp_path / "home")
    src = tmp_path / "src"
    files = make_tree(src)
    assert len(files) >= 50 and max(map(len, files.values())) == 3 * 1024 * 1024 and min(map(len, files.values())) == 0
    aws.s3("mb", f"s3://{bucket_name}")
    url = f"s3://{bucket_name}/backup"

    first = aws.s3("sync", str(src), url).stdout
    assert transferred(first, "upload", bucket_name) == {f"backup/{k}" for k in files}
    assert aws.listing(url) == sizes_of(files)
    assert {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]} == \
        {f"backup/{k}": len(v) for k, v in files.items()}

    again = aws.s3("sync", str(src), url).stdout
    assert "upload:" not in again, again

    changed = "docs/notes/été à la plage.md"
    files[changed] = files[changed] + b" edited"
    files["docs/new file ñ.txt"] = b"brand new\n"
    write_tree(src, {k: files[k] for k in (changed, "docs/new file ñ.txt")})
    third = aws.s3("sync", str(src), url).stdout
    assert transferred(third, "upload", bucket_name) == {f"backup/{changed}", "backup/docs/new file ñ.txt"}, third

    gone = ["special/plus+sign.txt", "photos/日本語 フォルダ/写真 01.jpg"]
    for rel in gone:
        (src / rel).unlink()
        del files[rel]
    kept = aws.s3("sync", str(src), url).stdout
    assert transferred(kept, "delete", bucket_name) == set(), "sync without --delete must not delete"
    deleted = aws.s3("sync", "--delete", str(src), url).stdout
    assert transferred(deleted, "delete", bucket_name) == {f"backup/{k}" for k in gone}, deleted
    assert aws.listing(url) == sizes_of(files)

    down = tmp_path / "down"
    pulled = aws.s3("sync", url, str(down)).stdout
    assert len([ln for ln in pulled.splitlines() if ln.startswith("download: ")]) == len(files)
    assert_same_tree(files, read_tree(down))
    assert "download:" not in aws.s3("sync", url, str(down)).stdout


def test_aws_s3_cp_ls_prefix_pagination_and_rm_recursive(cluster, s3, bucket_name, tmp_path):
    aws = AwsCli(cluster, tmp_path / "home")
    aws.s3("mb", f"s3://{bucket_name}")
    src = tmp_path / "src"
    files = {f"logs/2026/day {i:02d}/événement.log": os.urandom(i * 37) for i in range(23)}
    files["logs/readme + notes.txt"] = b"notes"
    files["other/x.txt"] = b"x"
    write_tree(src, files)
    aws.s3("cp", "--recursive", str(src), f"s3://{bucket_name}/")

    # Small pages exercise ListObjectsV2 continuation tokens through the CLI's paginator.
    paged = aws.s3("ls", "--recursive", "--page-size", "4", f"s3://{bucket_name}/logs/").stdout
    keys = [line.split(maxsplit=3)[3] for line in paged.splitlines()]
    assert keys == sorted(k for k in files if k.startswith("logs/"))
    top = aws.s3("ls", f"s3://{bucket_name}/logs/").stdout.splitlines()
    assert sorted(ln.split()[-1] for ln in top if ln.split()[0] == "PRE") == ["2026/"]
    assert [ln.split(maxsplit=3)[3] for ln in top if ln.split()[0] != "PRE"] == ["readme + notes.txt"]
    api = aws("s3api", "list-objects-v2", "--bucket", bucket_name, "--prefix", "logs/2026/",
              "--delimiter", "/", "--query", "CommonPrefixes[].Prefix", "--output", "text").stdout
    assert sorted(p for p in re.split(r"[\t\n]", api) if p) == \
        sorted({f"logs/2026/day {i:02d}/" for i in range(23)})

    one = tmp_path / "one.log"
    aws.s3("cp", f"s3://{bucket_name}/logs/2026/day 22/événement.log", str(one))
    assert one.read_bytes() == files["logs/2026/day 22/événement.log"]

    removed = aws.s3("rm", "--recursive", f"s3://{bucket_name}/logs/").stdout
    assert transferred(removed, "delete", bucket_name) == {k for k in files if k.startswith("logs/")}
    assert aws.listing(f"s3://{bucket_name}") == {"other/x.txt": 1}
    aws.s3("rb", "--force", f"s3://{bucket_name}")
    assert bucket_name not in aws.s3("ls").stdout


def test_aws_s3_multipart_upload_and_download(cluster, s3, bucket_name, tmp_path):
    """Files over the CLI's multipart threshold go up in parts (needs multipart uploads)."""
    aws = AwsCli(cluster, tmp_path / "home", "  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n")
    aws.s3("mb", f"s3://{bucket_name}")
    src = tmp_path / "src"
    files = {"big/eleven MiB.bin": os.urandom(11 * 1024 * 1024 + 5), "big/small.txt": b"small"}
    write_tree(src, files)
    aws.s3("sync", str(src), f"s3://{bucket_name}/mp")
    head = s3.head_object(Bucket=bucket_name, Key="mp/big/eleven MiB.bin")
    assert head["ContentLength"] == len(files["big/eleven MiB.bin"]) and head["ETag"].endswith('-3"')
    assert "upload:" not in aws.s3("sync", str(src), f"s3://{bucket_name}/mp").stdout
    down = tmp_path / "down"
    aws.s3("sync", f"s3://{bucket_name}/mp", str(down))
    assert_same_tree(files, read_tree(down))


def test_aws_s3_server_side_copy(cluster, s3, bucket_name, tmp_path):
    """`aws s3 cp s3://... s3://...` and `aws s3 sync` between prefixes use CopyObject."""
    aws = AwsCli(cluster, tmp_path / "home")
    aws.s3("mb", f"s3://{bucket_name}")
    src = tmp_path / "src"
    files = {"a/one ü.txt": b"one", "a/two.bin": os.urandom(300_000)}
    write_tree(src, files)
    aws.s3("sync", str(src), f"s3://{bucket_name}/orig")
    aws.s3("cp", f"s3://{bucket_name}/orig/a/one ü.txt", f"s3://{bucket_name}/copy/one ü.txt")
    aws.s3("sync", f"s3://{bucket_name}/orig", f"s3://{bucket_name}/mirror")
    assert aws.listing(f"s3://{bucket_name}/mirror") == sizes_of(files)
    down = tmp_path / "down"
    aws.s3("sync", f"s3://{bucket_name}/mirror", str(down))
    assert_same_tree(files, read_tree(down))
    assert s3.get_object(Bucket=bucket_name, Key="copy/one ü.txt")["Body"].read() == b"one"


def test_aws_s3api_acls(cluster, s3, bucket_name, tmp_path):
    aws = AwsCli(cluster, tmp_path / "home")
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key="k", Body=b"x")
    for args in (("get-object-acl", "--key", "k"), ("get-bucket-acl",)):
        acl = json.loads(aws("s3api", *args, "--bucket", bucket_name).stdout)
        assert acl["Owner"]["ID"] and len(acl["Grants"]) == 1
        assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"
        assert acl["Grants"][0]["Grantee"] == {"Type": "CanonicalUser", "ID": acl["Owner"]["ID"],
                                               "DisplayName": acl["Owner"]["DisplayName"]}
    aws("s3api", "put-object-acl", "--bucket", bucket_name, "--key", "k", "--acl", "private")
    aws("s3api", "put-bucket-acl", "--bucket", bucket_name, "--acl", "private")
    refused = aws("s3api", "put-object-acl", "--bucket", bucket_name, "--key", "k", "--acl", "public-read",
                  check=False)
    assert refused.returncode != 0 and "NotImplemented" in refused.stderr
