"""`objstore up` refuses options that cannot make a working cluster, before starting anything."""
from __future__ import annotations

import pytest

from objstore.cluster.launcher import Cluster, LaunchError, UpOptions, load_or_create_keys


@pytest.mark.parametrize("opts, words", [
    (UpOptions(storage_nodes=2), "needs at least 3 storage nodes"),
    (UpOptions(default_policy="replica:x"), "Invalid data policy"),
    (UpOptions(storage_nodes=6, default_policy="ec:5+2"), "the cluster has 6"),
    (UpOptions(storage_nodes=6, default_policy="ec:1+2"), "K >= 2"),
    (UpOptions(metadata_nodes=0), "--metadata-nodes"),
    (UpOptions(s3_port=70000), "--s3-port"),
])
def test_invalid_options_refused(tmp_path, opts, words):
    cluster = Cluster(UpOptions(**{**opts.__dict__, "data_dir": str(tmp_path / "d")}))
    with pytest.raises(LaunchError, match=words.replace("-", r"\-")):
        cluster.start()
    assert not (tmp_path / "d").exists()


def test_keys_are_generated_once_and_kept(tmp_path):
    first = load_or_create_keys(tmp_path, None, None)
    again = load_or_create_keys(tmp_path, None, None)
    assert first == again and first["access_key"] and first["secret_key"] and first["cluster_secret"]
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    given = load_or_create_keys(tmp_path, "MYKEY", "mysecret")
    assert given["access_key"] == "MYKEY" and given["cluster_secret"] == first["cluster_secret"]
    with pytest.raises(LaunchError):
        load_or_create_keys(tmp_path, "ONLYKEY", None)


def test_keys_are_never_on_disk_readable_by_others(tmp_path, monkeypatch):
    """The key file is created 0600, not written then chmod-ed: a crash between the two
    would leave the secrets world-readable."""
    import os

    def crash(*args, **kwargs):
        raise OSError("crash")

    old = os.umask(0o022)
    try:
        monkeypatch.setattr(os, "chmod", crash)
        monkeypatch.setattr(os, "fchmod", crash)
        try:
            load_or_create_keys(tmp_path, None, None)
        except OSError:
            pass
    finally:
        os.umask(old)
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o077 == 0, p.name
