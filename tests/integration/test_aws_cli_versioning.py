"""The real AWS CLI (s3api) against a real cluster: versioning end to end."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.test_aws_cli import aws

pytestmark = pytest.mark.integration


def api(cluster, *args: str, check: bool = True) -> dict:
    out = aws(cluster, "s3api", *args, "--output", "json", check=check).stdout
    return json.loads(out) if out.strip() else {}


def test_aws_cli_versioning(cluster, tmp_path):
    bucket = f"cli-ver-{uuid.uuid4().hex[:10]}"
    api(cluster, "create-bucket", "--bucket", bucket)
    api(cluster, "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
    assert api(cluster, "get-bucket-versioning", "--bucket", bucket)["Status"] == "Enabled"

    (tmp_path / "one.txt").write_text("first\n")
    (tmp_path / "two.txt").write_text("second!\n")
    v1 = api(cluster, "put-object", "--bucket", bucket, "--key", "doc.txt", "--body", str(tmp_path / "one.txt"))
    v2 = api(cluster, "put-object", "--bucket", bucket, "--key", "doc.txt", "--body", str(tmp_path / "two.txt"))
    assert v1["VersionId"] != v2["VersionId"]

    listed = api(cluster, "list-object-versions", "--bucket", bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        ("doc.txt", v2["VersionId"], True), ("doc.txt", v1["VersionId"], False)]

    out = tmp_path / "got.txt"
    got = api(cluster, "get-object", "--bucket", bucket, "--key", "doc.txt", "--version-id", v1["VersionId"], str(out))
    assert got["VersionId"] == v1["VersionId"] and out.read_text() == "first\n"

    deleted = api(cluster, "delete-object", "--bucket", bucket, "--key", "doc.txt")
    assert deleted["DeleteMarker"] is True
    listed = api(cluster, "list-object-versions", "--bucket", bucket)
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [
        ("doc.txt", deleted["VersionId"], True)]
    assert [v["IsLatest"] for v in listed["Versions"]] == [False, False]
    missing = aws(cluster, "s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", str(out), check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr

    # Clean up every version and marker, then the bucket.
    for vid in (deleted["VersionId"], v2["VersionId"], v1["VersionId"]):
        api(cluster, "delete-object", "--bucket", bucket, "--key", "doc.txt", "--version-id", vid)
    assert "Versions" not in api(cluster, "list-object-versions", "--bucket", bucket)
    api(cluster, "delete-bucket", "--bucket", bucket)
