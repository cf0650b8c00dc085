"""The shipped Prometheus files load: `promtool check rules` and `check config` accept them,
and `promtool test rules` runs alerts_test.yml (each alert fires when it should, and not
otherwise). Skipped without promtool (ops/install.sh installs the Debian prometheus package)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROM_DIR = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus")


def promtool(*args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)  # type: ignore[list-item]


def test_alert_rules_are_valid():
    out = promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_alert_rule_unit_tests_pass():
    out = promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_unit_tests_can_fail(tmp_path):
    """A wrong expectation is reported: the unit tests above assert something."""
    shutil.copy(PROM_DIR / "alerts.yml", tmp_path)
    text = (PROM_DIR / "alerts_test.yml").read_text().replace("Storage node s2 is down", "Storage node s9 is down")
    (tmp_path / "alerts_test.yml").write_text(text)
    out = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert out.returncode != 0 and "ObjstoreStorageNodeDown" in out.stdout + out.stderr


def test_prometheus_config_is_valid(tmp_path):
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROM_DIR / name, tmp_path)
    (tmp_path / "targets.json").write_text("[]")
    out = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
