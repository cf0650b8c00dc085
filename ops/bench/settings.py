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

PHASES = ("small-put", "small-get", "large-put", "large-get")
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


def resolve_settings(args: object, env: Mapping[str, str]) -> BenchSettings:
    """Settings from parsed arguments (an argparse Namespace), the environment and the data dir."""
    data_dir = Path(getattr(args, "data_dir"))
    cluster = _read_json(data_dir / "cluster.json")
    endpoint = getattr(args, "endpoint") or cluster.get("endpoint")
    if not endpoint:
        raise SettingsError(f"no endpoint: give --endpoint, or start a cluster with 'objstore up --data-dir {data_dir}'")
    access, secret, _source = pick_credentials(getattr(args, "access_key"), getattr(args, "secret_key"), env,
                                               _read_json(data_dir / "credentials.json"))
    duration = float(getattr(args, "duration"))
    if duration <= 0:
        raise SettingsError("--duration must be positive")
    large_count = int(getattr(args, "large_count"))
    if large_count < 1:
        raise SettingsError("--large-count must be at least 1")
    small_size, large_size = parse_size(getattr(args, "small_size")), parse_size(getattr(args, "large_size"))
    region = getattr(args, "region") or cluster.get("region") or env.get("AWS_REGION") or "us-east-1"
    return BenchSettings(
        endpoint=str(endpoint).rstrip("/"), access_key=access, secret_key=secret, region=str(region),
        data_dir=str(data_dir), bucket=getattr(args, "bucket"), duration_s=duration, small_size=small_size,
        large_size=large_size, large_count=large_count,
        concurrency=parse_int_list(getattr(args, "concurrency"), "--concurrency"),
        large_concurrency=parse_int_list(getattr(args, "large_concurrency"), "--large-concurrency"),
        phases=parse_phases(getattr(args, "phases")), json=bool(getattr(args, "json")),
        policy=getattr(args, "policy", None),
    )
