"""s3cmd (`mb`, `put`, `get`, `ls`, `del`, `sync`, `rb`) against a real cluster.

s3cmd reads only a temporary config file given with ``-c`` (host_base and host_bucket at
the cluster's endpoint, so path-style addressing; plain HTTP; SigV4 in us-east-1); HOME is
a temporary folder so ``~/.s3cfg`` is never touched.
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from tests.integration.tools_support import (assert_same_tree, find_tool, make_tree, purge_bucket, read_tree, run,
                                             sizes_of, tool_env, write_tree)

pytestmark = pytest.mark.integration

LS_LINE = re.compile(r"^\s*(?:\S+ \S+)\s+(\d+)\s+(s3://.*)$")
DIR_LINE = re.compile(r"^\s*DIR\s+(s3://.*)$")


class S3cmd:
    def __init__(self, cluster, home: Path) -> None:
        self.binary = find_tool("s3cmd", "apt-get install s3cmd, or run ops/install.sh as root")
        host = cluster.endpoint.removeprefix("http://")
        home.mkdir(parents=True, exist_ok=True)
        self.config = home / "s3cfg"
        self.config.write_text(
            "[default]\n"
            f"access_key = {cluster.access_key}\n"
            f"secret_key = {cluster.secret_key}\n"
            f"host_base = {host}\n"
            f"host_bucket = {host}\n"
            "use_https = False\n"
            "signature_v2 = False\n"
            "bucket_location = us-east-1\n"
            "progress_meter = False\n"
        )
        self.env = tool_env(home)

    def __call__(self, *args: str, check: bool = True):
        return run([self.binary, "-c", str(self.config), *args], self.env, check=check)

    def ls(self, url: str, recursive: bool = True) -> tuple[dict[str, int], list[str]]:
        """`s3cmd ls [-r] url` as ({key relative to url: size}, [DIR entries relative to url])."""
        out = self("ls", *(["-r"] if recursive else []), url).stdout
        files, dirs = {}, []
        for line in out.splitlines():
            if m := DIR_LINE.match(line):
                dirs.append(m.group(1).removeprefix(url))
            elif m := LS_LINE.match(line):
                files[m.group(2).removeprefix(url)] = int(m.group(1))
            elif line.strip():
                raise AssertionError(f"unexpected s3cmd ls line: {line!r}")
        return files, dirs


def transferred(out: str, verb: str) -> set[str]:
    """Destination names of s3cmd `upload:`/`download:` lines: 'src' -> 'dst'."""
    return {m.group(1) for m in re.finditer(rf"^{verb}: '.*' -> '(.*)'", out, re.MULTILINE)}


@pytest.fixture
def bucket_name(s3):
    name = f"s3cmd-{uuid.uuid4().hex[:10]}"
    yield name
    purge_bucket(s3, name)


def test_s3cmd_mb_put_get_ls_del_rb(cluster, s3, bucket_name, tmp_path):
    s3c = S3cmd(cluster, tmp_path / "home")
    b = f"s3://{bucket_name}"
    assert "created" in s3c("mb", b).stdout
    assert bucket_name in s3c("ls").stdout
    body = os.urandom(200_001)
    local = tmp_path / "fichier été 日本.bin"
    local.write_bytes(body)
    s3c("put", str(local), f"{b}/dir one/fichier été 日本.bin")
    s3c("put", str(local), f"{b}/dir one/sub/plus+and&.bin")
    (tmp_path / "top.txt").write_bytes(b"top\n")
    s3c("put", str(tmp_path / "top.txt"), f"{b}/top.txt")

    files, dirs = s3c.ls(f"{b}/", recursive=False)
    assert files == {"top.txt": 4} and dirs == ["dir one/"]
    files, dirs = s3c.ls(f"{b}/dir one/", recursive=False)
    assert files == {"fichier été 日本.bin": len(body)} and dirs == ["sub/"]
    files, _ = s3c.ls(f"{b}/")
    assert files == {"top.txt": 4, "dir one/fichier été 日本.bin": len(body), "dir one/sub/plus+and&.bin": len(body)}
    assert s3.get_object(Bucket=bucket_name, Key="dir one/sub/plus+and&.bin")["Body"].read() == body

    got = tmp_path / "got.bin"
    s3c("get", f"{b}/dir one/sub/plus+and&.bin", str(got))
    assert got.read_bytes() == body
    missing = s3c("get", f"{b}/nope", str(tmp_path / "nope"), check=False)
    assert missing.returncode != 0 and ("does not exist" in missing.stderr or "404" in missing.stderr)

    s3c("del", f"{b}/dir one/fichier été 日本.bin")
    s3c("del", f"{b}/dir one/sub/plus+and&.bin")
    files, _ = s3c.ls(f"{b}/")
    assert files == {"top.txt": 4}
    refused = s3c("rb", b, check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr
    s3c("del", f"{b}/top.txt")
    s3c("rb", b)
    assert bucket_name not in s3c("ls").stdout


def test_s3cmd_sync_up_and_down(cluster, s3, bucket_name, tmp_path):
    s3c = S3cmd(cluster, tmp_path / "home")
    b = f"s3://{bucket_name}"
    s3c("mb", b)
    src = tmp_path / "src"
    files = make_tree(src)
    url = f"{b}/tree/"

    up = s3c("sync", f"{src}/", url).stdout
    assert transferred(up, "upload") == {url + k for k in files}, up
    listed, _ = s3c.ls(url)
    assert listed == sizes_of(files)

    again = s3c("sync", f"{src}/", url).stdout
    assert transferred(again, "upload") == set(), again
    changed = "photos/raw/IMG_0002.CR2"
    files[changed] = files[changed] + b"more"
    files["photos/raw/IMG_0003 nouveau.CR2"] = os.urandom(5000)
    write_tree(src, {k: files[k] for k in (changed, "photos/raw/IMG_0003 nouveau.CR2")})
    third = s3c("sync", f"{src}/", url).stdout
    assert transferred(third, "upload") == {url + changed, url + "photos/raw/IMG_0003 nouveau.CR2"}, third

    down = tmp_path / "down"
    pulled = s3c("sync", url, f"{down}/").stdout
    assert len(transferred(pulled, "download")) == len(files)
    assert_same_tree(files, read_tree(down))
    assert transferred(s3c("sync", url, f"{down}/").stdout, "download") == set()

    s3c("del", "--recursive", "--force", url)
    assert s3c.ls(f"{b}/") == ({}, [])
    s3c("rb", b)


def test_s3cmd_sync_delete_removed(cluster, s3, bucket_name, tmp_path):
    """`s3cmd sync --delete-removed` deletes remote files in batches (needs DeleteObjects)."""
    s3c = S3cmd(cluster, tmp_path / "home")
    b = f"s3://{bucket_name}"
    s3c("mb", b)
    src = tmp_path / "src"
    files = {"keep.txt": b"keep", "drop me.txt": b"drop", "sub/drop ü.txt": b"drop too", "sub/keep.txt": b"k"}
    write_tree(src, files)
    s3c("sync", f"{src}/", f"{b}/")
    for rel in ("drop me.txt", "sub/drop ü.txt"):
        (src / rel).unlink()
        del files[rel]
    s3c("sync", "--delete-removed", f"{src}/", f"{b}/")
    listed, _ = s3c.ls(f"{b}/")
    assert listed == sizes_of(files)


def test_s3cmd_multipart_put(cluster, s3, bucket_name, tmp_path):
    """Files over --multipart-chunk-size-mb go up in parts (needs multipart uploads)."""
    s3c = S3cmd(cluster, tmp_path / "home")
    b = f"s3://{bucket_name}"
    s3c("mb", b)
    body = os.urandom(11 * 1024 * 1024 + 5)
    (tmp_path / "big.bin").write_bytes(body)
    s3c("put", "--multipart-chunk-size-mb=5", str(tmp_path / "big.bin"), f"{b}/big one.bin")
    listed, _ = s3c.ls(f"{b}/")
    assert listed == {"big one.bin": len(body)}
    s3c("get", f"{b}/big one.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == body


def test_s3cmd_cp_and_mv(cluster, s3, bucket_name, tmp_path):
    """`s3cmd cp` and `mv` are server-side (needs CopyObject)."""
    s3c = S3cmd(cluster, tmp_path / "home")
    b = f"s3://{bucket_name}"
    s3c("mb", b)
    (tmp_path / "a.txt").write_bytes(b"alpha")
    s3c("put", str(tmp_path / "a.txt"), f"{b}/a ü.txt")
    s3c("cp", f"{b}/a ü.txt", f"{b}/copies/a ü.txt")
    s3c("mv", f"{b}/a ü.txt", f"{b}/moved.txt")
    listed, _ = s3c.ls(f"{b}/")
    assert listed == {"copies/a ü.txt": 5, "moved.txt": 5}
    assert s3.get_object(Bucket=bucket_name, Key="copies/a ü.txt")["Body"].read() == b"alpha"


def test_s3cmd_setacl_private_and_info(cluster, s3, bucket_name, tmp_path):
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key="k.txt", Body=b"acl\n")
    s3c, b = S3cmd(cluster, tmp_path / "home"), f"s3://{bucket_name}"
    assert s3c("setacl", "--acl-private", f"{b}/k.txt").returncode == 0
    assert s3c("setacl", "--acl-private", b).returncode == 0
    info = s3c("info", f"{b}/k.txt").stdout
    assert re.search(r"ACL:\s+\S+: FULL_CONTROL", info), info
    refused = s3c("setacl", "--acl-public", f"{b}/k.txt", check=False)
    assert refused.returncode != 0 and "NotImplemented" in refused.stderr
    assert s3.get_object(Bucket=bucket_name, Key="k.txt")["Body"].read() == b"acl\n"
