"""rclone (`copy`, `check`, `sync`, `ls`, `lsf`, `cat`) against a real cluster.

rclone is configured only through ``RCLONE_CONFIG_OBJ_*`` environment variables (an S3
remote named ``obj``, provider Other, path-style addressing, us-east-1) with an empty
temporary config file; the user's rclone config is never read. Retries are kept low so a
failing operation fails fast instead of backing off.
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


class Rclone:
    def __init__(self, cluster, home: Path) -> None:
        self.binary = find_tool("rclone", "apt-get install rclone, or run ops/install.sh as root")
        home.mkdir(parents=True, exist_ok=True)
        config = home / "rclone.conf"
        config.write_text("")
        self.env = tool_env(
            home,
            RCLONE_CONFIG=str(config),
            RCLONE_CONFIG_OBJ_TYPE="s3",
            RCLONE_CONFIG_OBJ_PROVIDER="Other",
            RCLONE_CONFIG_OBJ_ENV_AUTH="false",
            RCLONE_CONFIG_OBJ_ENDPOINT=cluster.endpoint,
            RCLONE_CONFIG_OBJ_ACCESS_KEY_ID=cluster.access_key,
            RCLONE_CONFIG_OBJ_SECRET_ACCESS_KEY=cluster.secret_key,
            RCLONE_CONFIG_OBJ_REGION="us-east-1",
            RCLONE_CONFIG_OBJ_FORCE_PATH_STYLE="true",
            RCLONE_RETRIES="1",
            RCLONE_LOW_LEVEL_RETRIES="1",
            RCLONE_CONTIMEOUT="10s",
            RCLONE_TIMEOUT="60s",
        )

    def __call__(self, *args: str, check: bool = True, text: bool = True):
        return run([self.binary, *args], self.env, check=check, text=text)

    def ls(self, remote: str) -> dict[str, int]:
        """`rclone ls` as {path: size}."""
        result = {}
        for line in self("ls", remote).stdout.splitlines():
            size, path = line.lstrip().split(" ", 1)
            result[path] = int(size)
        return result

    def lsf(self, remote: str, *flags: str) -> list[str]:
        """`rclone lsf -R --files-only` paths, in the order rclone printed them."""
        return self("lsf", "-R", "--files-only", *flags, remote).stdout.splitlines()

    def check(self, local: Path, remote: str) -> str:
        r = self("check", str(local), remote, check=False)
        return r.stdout + r.stderr


def copied(log: str) -> set[str]:
    """Paths rclone -v logged as copied."""
    return set(re.findall(r"INFO  : (.+?): Copied \((?:new|replaced existing)\)", log))


def deleted(log: str) -> set[str]:
    return set(re.findall(r"INFO  : (.+?): Deleted", log))


@pytest.fixture
def bucket_name(s3):
    name = f"rclone-{uuid.uuid4().hex[:10]}"
    yield name
    purge_bucket(s3, name)


def test_rclone_copy_check_list_cat_sync_and_download(cluster, s3, bucket_name, tmp_path):
    rc = Rclone(cluster, tmp_path / "home")
    src = tmp_path / "src"
    files = make_tree(src)
    remote = f"obj:{bucket_name}/tree"
    rc("mkdir", f"obj:{bucket_name}")
    assert s3.head_bucket(Bucket=bucket_name)["ResponseMetadata"]["HTTPStatusCode"] == 200

    up = rc("copy", "-v", str(src), remote).stderr
    assert copied(up) == set(files), up
    checked = rc.check(src, remote)
    assert "0 differences found" in checked and f"{len(files)} matching files" in checked, checked
    assert rc.ls(remote) == sizes_of(files)
    assert sorted(rc.lsf(remote)) == sorted(files)
    # Small list pages, through ListObjects v1 markers and ListObjectsV2 continuation tokens.
    for version in ("1", "2"):
        assert sorted(rc.lsf(remote, "--s3-list-chunk", "7", "--s3-list-version", version)) == sorted(files)
    dirs = rc("lsf", "--dirs-only", remote).stdout.splitlines()
    assert sorted(dirs) == sorted({k.split("/", 1)[0] + "/" for k in files if "/" in k})
    for name in ("photos/日本語 フォルダ/写真 02.jpg", "special/amp&eq=semi;colon.txt", "empty.dat"):
        assert rc("cat", f"{remote}/{name}", text=False).stdout == files[name]

    again = rc("copy", "-v", str(src), remote).stderr
    assert copied(again) == set(), again

    gone = ["special/percent%20literal.txt", "set 1/docs/report 2024.txt", "README.txt"]
    for rel in gone:
        (src / rel).unlink()
        del files[rel]
    changed = "music/Ünïcödé Artist/02 - Track two.flac"
    files[changed] = files[changed] + b"!"
    files["music/new track ♫.flac"] = os.urandom(12345)
    write_tree(src, {k: files[k] for k in (changed, "music/new track ♫.flac")})
    synced = rc("sync", "-v", str(src), remote).stderr
    assert deleted(synced) == set(gone), synced
    assert copied(synced) == {changed, "music/new track ♫.flac"}, synced
    assert rc.ls(remote) == sizes_of(files)
    checked = rc.check(src, remote)
    assert "0 differences found" in checked and f"{len(files)} matching files" in checked, checked

    down = tmp_path / "down"
    rc("copy", remote, str(down))
    assert_same_tree(files, read_tree(down))
    downloaded_check = rc.check(down, remote)
    assert "0 differences found" in downloaded_check, downloaded_check

    rc("purge", f"obj:{bucket_name}")
    assert bucket_name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_rclone_check_reports_a_difference(cluster, s3, bucket_name, tmp_path):
    rc = Rclone(cluster, tmp_path / "home")
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"alpha", "b/c.txt": b"gamma"})
    rc("mkdir", f"obj:{bucket_name}")
    rc("copy", str(src), f"obj:{bucket_name}")
    s3.put_object(Bucket=bucket_name, Key="b/c.txt", Body=b"GAMMA")
    out = rc.check(src, f"obj:{bucket_name}")
    assert "1 differences found" in out and "b/c.txt" in out, out


def test_rclone_multipart_upload(cluster, s3, bucket_name, tmp_path):
    """Above --s3-upload-cutoff rclone uploads in parts (needs multipart uploads)."""
    rc = Rclone(cluster, tmp_path / "home")
    src = tmp_path / "src"
    files = {"big/eleven MiB.bin": os.urandom(11 * 1024 * 1024 + 5), "big/small.txt": b"small"}
    write_tree(src, files)
    rc("mkdir", f"obj:{bucket_name}")
    rc("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(src), f"obj:{bucket_name}/mp")
    assert rc.ls(f"obj:{bucket_name}/mp") == sizes_of(files)
    assert s3.head_object(Bucket=bucket_name, Key="mp/big/eleven MiB.bin")["ETag"].endswith('-3"')
    checked = rc.check(src, f"obj:{bucket_name}/mp")
    assert "0 differences found" in checked, checked
    down = tmp_path / "down"
    rc("copy", f"obj:{bucket_name}/mp", str(down))
    assert_same_tree(files, read_tree(down))


def test_rclone_server_side_copy_and_move(cluster, s3, bucket_name, tmp_path):
    """`rclone copyto`/`moveto` inside one remote use CopyObject (then DeleteObject for a move);
    a changed mtime alone is written by copying the object onto itself with new metadata."""
    rc = Rclone(cluster, tmp_path / "home")
    src = tmp_path / "src"
    files = {"x/one ü.txt": b"one", "x/two.bin": os.urandom(300_000)}
    write_tree(src, files)
    rc("mkdir", f"obj:{bucket_name}")
    rc("copy", str(src), f"obj:{bucket_name}/orig")
    rc("copyto", f"obj:{bucket_name}/orig/x/one ü.txt", f"obj:{bucket_name}/copy/one ü.txt")
    rc("moveto", f"obj:{bucket_name}/orig/x/two.bin", f"obj:{bucket_name}/moved/two.bin")
    assert rc.ls(f"obj:{bucket_name}") == {"orig/x/one ü.txt": 3, "copy/one ü.txt": 3, "moved/two.bin": 300_000}
    assert rc("cat", f"obj:{bucket_name}/moved/two.bin", text=False).stdout == files["x/two.bin"]

    # Same bytes, new mtime: rclone sync rewrites only the metadata by a REPLACE self-copy.
    os.utime(src / "x/one ü.txt", (1_600_000_000.5, 1_600_000_000.5))
    synced = rc("sync", "-v", str(src / "x"), f"obj:{bucket_name}/orig/x").stderr
    assert "one ü.txt: Updated modification time in destination" in synced, synced
    assert copied(synced) == {"two.bin"}, synced  # moved away from orig/ above, so copied back
    lsl = rc("lsl", f"obj:{bucket_name}/orig/x").stdout
    assert "2020-09-13 12:26:40.500000000 one ü.txt" in lsl, lsl
    assert rc("cat", f"obj:{bucket_name}/orig/x/one ü.txt", text=False).stdout == b"one"
