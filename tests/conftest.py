"""Fixtures shared by the integration and fault tests: one real local cluster per session."""
from __future__ import annotations

import contextlib
import shutil
import uuid
import warnings
from typing import Iterator

import psutil
import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under ``--dist loadgroup`` (pytest-xdist, the default run's two workers) each test
    file runs whole on one worker, so a module-scoped cluster starts once; the many-hosts
    tests share one worker, so their five-host deployment (a session fixture) starts once
    (tests/harness/scheduling.py)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.harness.scheduling import FileScheduling
    return FileScheduling(config, log)


def running_cluster(tmp_path_factory: pytest.TempPathFactory, name: str = "cluster",
                    extra_args: tuple[str, ...] = ()) -> Iterator[LocalCluster]:
    """A started LocalCluster (``objstore up`` with ``extra_args``), stopped afterwards and
    its stored blobs removed (its logs and metadata are kept)."""
    c = LocalCluster(tmp_path_factory.mktemp(name) / "data", extra_args=extra_args)
    c.start()
    try:
        yield c
    finally:
        try:
            c.stop()
        finally:
            shutil.rmtree(c.data_dir / "storage", ignore_errors=True)


_SESSION: list[LocalCluster] = []  # the session cluster, once started
# The session cluster collects the blobs of deleted objects a minute after they were
# written (not an hour), so the many tests that share it do not pile up their large
# objects on a machine with little free disk (a minute still leaves a 256 MiB PUT under
# load ample time to commit).
SESSION_RECLAIM = ("--gc-grace", "60", "--gc-interval", "10")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster every test of the session may share: each test works in its own
    buckets and keys, and must leave every process of it running."""
    for c in running_cluster(tmp_path_factory, extra_args=SESSION_RECLAIM):
        _SESSION.append(c)
        yield c


@pytest.fixture(scope="session")
def s3(cluster: LocalCluster):
    return make_s3(cluster)


@pytest.fixture
def bucket(request, s3) -> Iterator[str]:
    """A bucket of the cluster's default policy, or of the policy a test parametrizes it
    with (``both_policies``)."""
    yield from temporary_bucket(s3, getattr(request, "param", None))


def damage(c: LocalCluster) -> list[str]:
    """What is wrong with the processes of ``c``: gone, exited or stopped."""
    if c.proc is None or c.proc.poll() is not None:
        return ["objstore up exited"]
    bad = []
    for p in c.processes():
        try:
            state = psutil.Process(p["pid"]).status()
        except psutil.NoSuchProcess:
            state = "gone"
        if state in ("gone", psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD, psutil.STATUS_STOPPED):
            bad.append(f"{p['id']} is {state}")
    return bad


def restart(c: LocalCluster) -> None:
    """Stop ``c`` (its stopped processes resumed first, what is left killed) and start it
    again on its data dir: the same port, keys and objects."""
    for pid in c.child_pids():
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).resume()
    with contextlib.suppress(AssertionError):  # stop() kills and names what the launcher left
        c.stop()
    c.start()


@pytest.fixture(autouse=True)
def session_cluster_left_intact(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test of the session cluster starts with every process of it running; one that
    leaves a process dead or stopped fails (in its teardown). Either way the cluster is
    restarted on its data dir, so no later test fails for it."""
    shared = "cluster" in request.fixturenames and request.getfixturevalue("cluster") is next(iter(_SESSION), None)
    if shared and (bad := damage(_SESSION[0])):  # a signal the last check was too early to see
        restart(_SESSION[0])
        warnings.warn(f"the session cluster was found damaged ({', '.join(bad)}) and restarted")
    yield
    if shared and (bad := damage(_SESSION[0])):
        restart(_SESSION[0])
        pytest.fail(f"the test left the session cluster damaged ({', '.join(bad)}); it was restarted", pytrace=False)


POLICIES = ("replica:3", "ec:4+2")
# Runs a test once per data policy: its ``bucket`` is replica:3, then ec:4+2.
both_policies = pytest.mark.parametrize("bucket", POLICIES, indirect=True)
# Object sizes that take each write path of an ec bucket: replica:M+1 below 64 KiB, coded
# and sent whole, coded and streamed over several stripes.
SIZES = (1000, 200 * 1024, 2 * 1024 * 1024 + 3)


def temporary_bucket(s3, policy: str | None = None) -> Iterator[str]:
    """A new bucket (of the cluster's default policy, or ``policy``) for one test; emptied
    and deleted after it."""
    name = f"test-{uuid.uuid4().hex[:12]}"

    def add_policy(request, **_):
        request.headers["x-objstore-policy"] = policy

    if policy is not None:
        s3.meta.events.register("before-sign.s3.CreateBucket", add_policy)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        if policy is not None:
            s3.meta.events.unregister("before-sign.s3.CreateBucket", add_policy)
    yield name
    # Every version and delete marker, so tests may turn versioning on.
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for u in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
    s3.delete_bucket(Bucket=name)
