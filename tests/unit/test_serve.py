"""``python -m ops.serve ROLE``: the flags, errors and exit codes of ``objstore ROLE``, with
only that role's modules imported."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ops.serve import SERVICES, main
from tests.cluster_harness import ROOT


@pytest.mark.parametrize("role", sorted(SERVICES))
def test_a_bad_setting_is_reported_as_objstore_reports_it(role, capsys, monkeypatch):
    monkeypatch.delenv("OBJSTORE_CLUSTER_SECRET", raising=False)
    id_flag = "--id" if role == "gateway" else "--node-id"
    assert main([role, id_flag, "x1", "--port", "99999"]) == 2
    assert capsys.readouterr().err.startswith(f"objstore {role}: ")


def test_an_unknown_role_is_a_usage_error(capsys):
    assert main(["bogus"]) == 2
    assert "usage: python -m ops.serve" in capsys.readouterr().err


def test_serving_a_role_leaves_the_objstore_command_unimported():
    probe = ("import sys, ops.serve, objstore.node.app, objstore.node.cli_args\n"
             "print(sorted(m for m in ('ops.cli', 'gateway.app', 'metadata.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
