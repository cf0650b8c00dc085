"""The benchmark's settings: parsing option values and finding the endpoint and keys.

``resolve_settings`` turns parsed command-line values, the environment and the data
dir's ``cluster.json``/``credentials.json`` into one frozen ``BenchSettings``.
Precedence for credentials: ``--access-key/--secret-key``, then ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, then ``OBJSTORE_ACCESS_KEY`` / ``OBJSTORE_SECRET_KEY``, then
``<data-dir>/credentials.json``; a pair is only ever taken whole from one source.
The endpoint is ``--endpoint`` or cluster.json's ``endpoint``. Invalid values raise
``SettingsError`` naming the option.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from objstore.config import read_secret_file
from objstore.errors import InvalidArgument

PHASES = ("small-put", "small-get", "large-put", "large-get", "multipart-put")
DEFAULT_PHASES = PHASES[:4]  # a single-endpoint run; ``--compare`` runs all five
# (single endpoint, --compare): the workloads of the speed targets when comparing
DEFAULTS = {
    "phases": (",".join(DEFAULT_PHASES), ",".join(PHASES)),
    "concurrency": ("1,32", "16,64"),
    "large_concurrency": ("1,4", "2"),
    "duration": (10.0, 5.0),
    "large_count": (8, 4),
}
MiB = 1 << 20
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": MiB, "g": 1 << 30, "t": 1 << 40}


class SettingsError(ValueError):
    """A bad option value or missing endpoint/keys; the message names what to fix."""


def parse_size(text: str) -> int:
    """'4096', '4k', '4KiB', '64MiB', '1.5m' -> bytes (binary units)."""
    match = _SIZE_RE.match(str(text))
    if not match:
        raise SettingsError(f"not a size: {text!r} (try 4096, 4KiB, 64MiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """'1,32' -> (1, 32); every value at least 1."""
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise SettingsError(f"{option} takes a comma-separated list of integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise SettingsError(f"{option} values must be at least 1 (got {text!r})")
    return values


def parse_phases(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in str(text).split(",") if v.strip())
    unknown = [n for n in names if n not in PHASES]
    if unknown or not names:
        raise SettingsError(f"--phases takes names from {','.join(PHASES)}; unknown: {','.join(unknown) or '(none)'}")
    return names


@dataclass(frozen=True)
class BenchSettings:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    data_dir: str
    bucket: str | None
    duration_s: float
    small_size: int
    large_size: int
    large_count: int
    concurrency: tuple[int, ...]
    large_concurrency: tuple[int, ...]
    phases: tuple[str, ...]
    json: bool
    policy: str | None = None  # data policy of the bucket the run creates (objstore only)
    part_size: int = 8 * MiB  # multipart-put: the size of each part
    part_concurrency: int = 4  # multipart-put: parts of one upload in flight at once
    compare: "CompareSettings | None" = None
    rounds: int = 5
    disk_limit_mb_s: float | None = None  # three parallel fsynced streams together (ops/bench_disk.py)
    disk_copies: int = 3
    idle_sample_s: float = 3.0  # --compare: seconds of each side's idle CPU measured before the first workload


@dataclass(frozen=True)
class CompareSettings:
    """The second endpoint of ``--compare`` and how to find its processes."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str | None
    pids_from: str | None = None
    process_pattern: str | None = None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def pick_credentials(cli_access: str | None, cli_secret: str | None, env: Mapping[str, str],
                     stored: Mapping[str, object]) -> tuple[str, str, str]:
    """(access key, secret key, where they came from) by the module's precedence."""
    candidates = [
        ("--access-key/--secret-key", cli_access, cli_secret),
        ("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")),
        ("OBJSTORE_ACCESS_KEY/OBJSTORE_SECRET_KEY", env.get("OBJSTORE_ACCESS_KEY"), env.get("OBJSTORE_SECRET_KEY")),
        ("credentials.json", stored.get("access_key"), stored.get("secret_key")),
    ]
    for source, access, secret in candidates:
        if access and secret:
            return str(access), str(secret), source
        if source.startswith("--") and (access or secret):
            raise SettingsError("give both --access-key and --secret-key, or neither")
    raise SettingsError("no S3 keys: give --access-key/--secret-key, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                        "or point --data-dir at a cluster started with 'objstore up'")


def _default(args: object, name: str, comparing: bool) -> object:
    value = getattr(args, name, None)
    return DEFAULTS[name][1 if comparing else 0] if value is None else value


def compare_credentials(access: str | None, secret: str | None, secret_file: str | None,
                        env: Mapping[str, str]) -> tuple[str, str]:
    """The second endpoint's (access key, secret key): the access key from
    ``--compare-access-key`` or OBJSTORE_COMPARE_ACCESS_KEY; the secret from
    ``--compare-secret-key``, ``--compare-secret-file`` (mode 0600) or OBJSTORE_COMPARE_SECRET_KEY."""
    access = access or env.get("OBJSTORE_COMPARE_ACCESS_KEY")
    if not secret and secret_file:
        try:
            secret = read_secret_file(secret_file)
        except InvalidArgument as exc:
            raise SettingsError(str(exc)) from None
    secret = secret or env.get("OBJSTORE_COMPARE_SECRET_KEY")
    if not access or not secret:
        raise SettingsError("--compare needs the second endpoint's keys: --compare-access-key (or "
                            "OBJSTORE_COMPARE_ACCESS_KEY) and --compare-secret-file (mode 0600) or "
                            "OBJSTORE_COMPARE_SECRET_KEY")
    return access, secret


def _compare_settings(args: object, env: Mapping[str, str], region: str) -> CompareSettings | None:
    endpoint = getattr(args, "compare", None)
    if not endpoint:
        return None
    access, secret = compare_credentials(getattr(args, "compare_access_key", None),
                                         getattr(args, "compare_secret_key", None),
                                         getattr(args, "compare_secret_file", None), env)
    return CompareSettings(endpoint=str(endpoint).rstrip("/"), access_key=access, secret_key=secret,
                           region=getattr(args, "compare_region", None) or region,
                           bucket=getattr(args, "compare_bucket", None),
                           pids_from=getattr(args, "compare_pids_from", None),
                           process_pattern=getattr(args, "compare_process_pattern", None))


def resolve_settings(args: object, env: Mapping[str, str]) -> BenchSettings:
    """Settings from parsed arguments (an argparse Namespace), the environment and the data dir."""
    data_dir = Path(getattr(args, "data_dir"))
    cluster = _read_json(data_dir / "cluster.json")
    endpoint = getattr(args, "endpoint") or cluster.get("endpoint")
    if not endpoint:
        raise SettingsError(f"no endpoint: give --endpoint, or start a cluster with 'objstore up --data-dir {data_dir}'")
    access, secret, _source = pick_credentials(getattr(args, "access_key"), getattr(args, "secret_key"), env,
                                               _read_json(data_dir / "credentials.json"))
    comparing = bool(getattr(args, "compare", None))
    duration = float(_default(args, "duration", comparing))  # type: ignore[arg-type]
    if duration <= 0:
        raise SettingsError("--duration must be positive")
    large_count = int(_default(args, "large_count", comparing))  # type: ignore[call-overload]
    if large_count < 1:
        raise SettingsError("--large-count must be at least 1")
    small_size, large_size = parse_size(getattr(args, "small_size")), parse_size(getattr(args, "large_size"))
    region = getattr(args, "region") or cluster.get("region") or env.get("AWS_REGION") or "us-east-1"
    rounds = int(getattr(args, "rounds", None) or 5)
    if getattr(args, "rounds", None) is not None and int(getattr(args, "rounds")) < 1:
        raise SettingsError("--rounds must be at least 1")
    part_size = parse_size(getattr(args, "part_size", None) or "8MiB")
    part_concurrency = int(getattr(args, "part_concurrency", None) or 4)
    if part_size < 5 * MiB:
        raise SettingsError("--part-size must be at least 5 MiB (S3's smallest part but the last)")
    disk_limit = getattr(args, "disk_limit", None)
    if disk_limit is not None and float(disk_limit) <= 0:
        raise SettingsError("--disk-limit must be positive (MB/s of ops/bench_disk.py's streams together)")
    return BenchSettings(
        endpoint=str(endpoint).rstrip("/"), access_key=access, secret_key=secret, region=str(region),
        data_dir=str(data_dir), bucket=getattr(args, "bucket"), duration_s=duration, small_size=small_size,
        large_size=large_size, large_count=large_count,
        concurrency=parse_int_list(_default(args, "concurrency", comparing), "--concurrency"),
        large_concurrency=parse_int_list(_default(args, "large_concurrency", comparing), "--large-concurrency"),
        phases=parse_phases(_default(args, "phases", comparing)), json=bool(getattr(args, "json")),
        policy=getattr(args, "policy", None), part_size=part_size, part_concurrency=max(1, part_concurrency),
        compare=_compare_settings(args, env, str(region)), rounds=rounds,
        disk_limit_mb_s=None if disk_limit is None else float(disk_limit),
        disk_copies=max(1, int(getattr(args, "disk_copies", None) or 3)),
        idle_sample_s=max(0.0, float(getattr(args, "idle_sample", None) or 0.0)),
    )
