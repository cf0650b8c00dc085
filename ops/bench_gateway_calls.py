"""The gateway's CPU per small S3 request, two source trees side by side on one cluster.

``python -m ops.bench_gateway_calls --data-dir DIR [--base-tree PATH] [--tree PATH]
[--requests 1000] [--concurrency 16] [--rounds 6] [--size 4096] [--phases put,get]
[--profile DIR]``

Needs a running cluster (``objstore up --data-dir DIR``). Starts two extra gateways on
free 127.0.0.1 ports against its metadata service (the cluster secret from
``DIR/credentials.json`` passed in their environment, never on a command line): "A" runs
the code of ``--base-tree`` (e.g. ``git archive main | tar -x -C /tmp/base``), "B" that of
``--tree`` (default: this checkout), both with this Python. Each round drives both at once,
``--concurrency`` callers each (``ops.bench.s3client``: SigV4, ``UNSIGNED-PAYLOAD``, as
``objstore bench``), ``--requests`` PUTs of ``--size`` bytes and then GETs of those keys,
so both gateways see the same machine load; the CPU of each gateway process (user +
system, ``/proc/<pid>/stat``) over each phase, per request, is printed per round, then the
means and the per-round ratios B/A. ``--profile DIR`` instead runs gateway B alone under
the CPU profiler (``OBJSTORE_PROFILE``) for one round of ``--phases`` and writes
``DIR/gateway-<pid>.prof``; its keys are fixed (bucket ``gwcalls-profile``), so a
``--phases put`` run followed by a ``--phases get`` run gives one profile of each.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gateway.auth.sign import SigV4Signer
from objstore.cli_args import SECRET_ENV
from objstore.cluster.supervisor import free_port as _free_port
from objstore.logs import LOG_FILE_ENV, LOG_FORMAT_ENV
from objstore.profiling import PROFILE_ENV
from ops.bench.monitor import process_cpu
from ops.bench.s3client import S3Client

HERE = Path(__file__).resolve().parent.parent


def start_gateway(tree: Path, name: str, cluster: dict, secret: str, logs: Path,
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """One gateway process running ``tree``'s code; (process, endpoint)."""
    port = _free_port()
    meta = ",".join(p["address"] for p in cluster["processes"] if p["role"] == "metadata")
    child_env = {**os.environ, SECRET_ENV: secret, LOG_FILE_ENV: str(logs / f"{name}.log"),
                 LOG_FORMAT_ENV: "text", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "gateway", "--id", name, "--host", "127.0.0.1",
                             "--port", str(port), "--metadata", meta],
                            cwd=tree, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


async def wait_ready(client: S3Client, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited with {proc.returncode}")
        try:
            url, headers = client._prepare("GET", "/", None, None)
            async with client.session.get(url, headers=headers) as resp:
                if resp.status == 200:
                    return
        except Exception:  # noqa: BLE001 - connection refused, aiohttp's errors while the gateway starts
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("gateway not ready")


async def drive(client: S3Client, pid: int, bucket: str, op: str, keys: list[str], concurrency: int,
                body: bytes) -> tuple[float, float, int]:
    """(gateway CPU µs per request, requests/s, errors) of one phase."""
    todo = list(reversed(keys))
    errors = 0

    async def caller() -> None:
        nonlocal errors
        while todo:
            key = todo.pop()
            out = await (client.put(bucket, key, body, len(body)) if op == "put" else client.get(bucket, key))
            errors += out.error is not None

    cpu0, wall0 = process_cpu(pid), time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    cpu, wall = process_cpu(pid) - cpu0, time.monotonic() - wall0
    return cpu / len(keys) * 1e6, len(keys) / wall, errors


async def _bucket(client: S3Client, name: str) -> None:
    url, headers = client._prepare("PUT", f"/{name}", None, None)
    async with client.session.put(url, headers=headers) as resp:
        if resp.status not in (200, 409):  # 409: it exists already, ours (a profile run's)
            raise SystemExit(f"cannot create bucket {name}: {resp.status} {await resp.read()!r}")


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    cluster = json.loads((data_dir / "cluster.json").read_text())
    keys = json.loads((data_dir / "credentials.json").read_text())
    signer = SigV4Signer(keys["access_key"], keys["secret_key"], cluster.get("region", "us-east-1"))
    logs = Path(args.logs or data_dir / "logs")
    body = os.urandom(args.size)
    bucket = "gwcalls-profile" if args.profile else f"gwcalls-{os.getpid()}"
    phases = [p for p in args.phases.split(",") if p]
    trees = [("B", Path(args.tree).resolve())] if args.profile else \
        [("A", Path(args.base_tree).resolve()), ("B", Path(args.tree).resolve())]
    procs = {}
    try:
        for name, tree in trees:
            env = {PROFILE_ENV: f"gateway:{args.profile}"} if args.profile else None
            procs[name] = start_gateway(tree, f"gw{name}-{os.getpid()}", cluster, keys["cluster_secret"], logs, env)
        clients = {name: S3Client(endpoint, signer, connections=args.concurrency)
                   for name, (_, endpoint) in procs.items()}
        for c in clients.values():
            await c.__aenter__()
        try:
            for name, c in clients.items():
                await wait_ready(c, procs[name][0])
            await _bucket(next(iter(clients.values())), bucket)
            results: dict[str, list[tuple[float, float]]] = {"put": [], "get": []}
            for rnd in range(1 if args.profile else args.rounds):
                for op in phases:
                    prefix = "p-" if args.profile else f"{name}{rnd}-"
                    got = await asyncio.gather(*(
                        drive(c, procs[name][0].pid, bucket, op,
                              [f"{prefix}{i}" for i in range(args.requests)], args.concurrency, body)
                        for name, c in clients.items()))
                    line = "  ".join(f"{name} {us:7.0f} µs/req {rate:5.0f}/s {err} err"
                                     for name, (us, rate, err) in zip(clients, got))
                    if len(got) == 2:
                        results[op].append((got[0][0], got[1][0]))
                        line += f"  B/A {got[1][0] / got[0][0]:.3f}"
                    print(f"round {rnd} {op}: {line}  load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            for c in clients.values():
                await c.__aexit__(None, None, None)
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            proc.wait(30)
    for op, pairs in results.items() if not args.profile else ():
        if not pairs:
            continue
        a, b = statistics.mean(x for x, _ in pairs), statistics.mean(y for _, y in pairs)
        ratios = sorted(y / x for x, y in pairs)
        print(f"{op}: A {a:.0f} µs, B {b:.0f} µs per request; B/A of means {b / a:.3f}, "
              f"per round {ratios[0]:.3f}-{ratios[-1]:.3f} (median {statistics.median(ratios):.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="the running cluster's data dir (objstore up --data-dir)")
    p.add_argument("--base-tree", help="source tree of gateway A (e.g. an unpacked `git archive main`)")
    p.add_argument("--tree", default=str(HERE), help="source tree of gateway B (default: this checkout)")
    p.add_argument("--requests", type=int, default=1000, help="PUTs, then GETs, per gateway per round")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--size", type=int, default=4096, help="object size in bytes")
    p.add_argument("--phases", default="put,get", help="put, get or both, in this order (default put,get)")
    p.add_argument("--logs", help="folder for the gateways' logs (default: the data dir's logs/)")
    p.add_argument("--profile", help="profile gateway B alone for one round; write its profile here")
    args = p.parse_args()
    if not args.profile and not args.base_tree:
        p.error("--base-tree is needed (or --profile DIR)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
