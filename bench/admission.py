"""Admission benchmark: the real server (`ddcompat serve --local`, the cluster's request path) against a bare
aiohttp TLS endpoint that parses the JSON and answers allowed, in the same run, on the same machine.

- throughput: wrk over HTTPS keep-alive at concurrency 1, 16 and 64 (server pinned to core 0, wrk to core 1);
- latency: a steady 500 requests/s from an asyncio client, p50/p99 with warm caches;
- memory: the server's RSS before and after.
The review mix: Pods with library injection, Deployments, a denial, an exempt namespace, UPDATEs.

Run: python bench/admission.py [--json] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_pod  # noqa: E402
from ddcompat import certs  # noqa: E402
from server_helpers import admission_review  # noqa: E402

BARE = textwrap.dedent("""
    import json, ssl, sys
    from aiohttp import web
    async def validate(request):
        body = json.loads(await request.read())
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                  "response": {"uid": body["request"]["uid"], "allowed": True}})
    app = web.Application(client_max_size=3_670_016)
    app.router.add_post("/validate", validate)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=ctx, access_log=None, print=None)
""")

WRK_LUA = textwrap.dedent("""
    local bodies = {}
    local i = 0
    init = function(args)
      for _, path in ipairs(args) do
        local f = io.open(path, "rb"); bodies[#bodies + 1] = f:read("*all"); f:close()
      end
    end
    request = function()
      i = i % #bodies + 1
      return wrk.format("POST", "/validate", {["Content-Type"] = "application/json"}, bodies[i])
    end
""")


def review_mix() -> list[dict[str, Any]]:
    inj = make_pod(
        annotations={
            "admission.datadoghq.com/python-lib.version": "v3",
            "ddcompat.io/web.python-version": "3.12",
        },
        env={"DD_APPSEC_ENABLED": "true"},
    )
    deploy = make_pod(
        kind="Deployment",
        ddtrace="4.16.0",
        python="3.12",
        capabilities="threat-detection,sca",
        env={"DD_SERVICE": "web", "DD_ENV": "prod", "DD_VERSION": "1.2.3"},
    )
    denied = make_pod(kind="Deployment", ddtrace="2.20.0", python="3.12", env={"DD_IAST_ENABLED": "true"})
    plain = make_pod(kind="StatefulSet")
    scaled = make_pod(kind="Deployment", ddtrace="4.16.0", python="3.12")
    scaled_new = json.loads(json.dumps(scaled))
    scaled_new["spec"]["replicas"] = 7
    for obj in (inj, deploy, denied, plain):  # pad to a realistic ~4 KB object
        obj["metadata"].setdefault("labels", {}).update(
            {f"team.example.com/k{i}": "v" * 40 for i in range(30)}
        )
    return [
        admission_review(inj),
        admission_review(deploy),
        admission_review(denied),
        admission_review(plain),
        admission_review(inj, namespace="kube-system"),
        admission_review(scaled_new, operation="UPDATE", old=scaled),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(port: int, connections: int, duration: int, lua: Path, bodies: list[Path]) -> tuple[float, float]:
    cmd = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--latency",
        "-s",
        str(lua),
        f"https://127.0.0.1:{port}",
        "--",
        *map(str, bodies),
    ]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return rps, float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")


async def steady(port: int, ca: Path, bodies: list[bytes], rate: int, seconds: float) -> tuple[float, float]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=str(ca))
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            async with session.post(
                f"https://127.0.0.1:{port}/validate",
                data=body,
                ssl=ctx,
                headers={"Content-Type": "application/json"},
            ) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(bodies[i % len(bodies)])))
        await asyncio.gather(*tasks)
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tls = certs.generate(tmp / "tls", ["127.0.0.1"])
        bodies = []
        for i, review in enumerate(review_mix()):
            path = tmp / f"review{i}.json"
            path.write_text(json.dumps(review))
            bodies.append(path)
        lua = tmp / "mix.lua"
        lua.write_text(WRK_LUA)
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        ours_port, bare_port = free_port(), free_port()
        env = {**os.environ, "DDCOMPAT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT / "operator")}
        ours = subprocess.Popen(
            [
                *pin,
                sys.executable,
                "-m",
                "ddcompat.cli",
                "serve",
                "--local",
                "--offline",
                "--port",
                str(ours_port),
                "--tls-cert",
                str(tls.cert),
                "--tls-key",
                str(tls.key),
                "--mode",
                "enforce",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        bare_script = tmp / "bare.py"
        bare_script.write_text(BARE)
        kopf_port = free_port()
        kopf_path = subprocess.Popen(
            [
                *pin,
                sys.executable,
                str(ROOT / "bench" / "kopf_path.py"),
                str(kopf_port),
                str(tls.cert),
                str(tls.key),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        bare = subprocess.Popen(
            [*pin, sys.executable, str(bare_script), str(bare_port), str(tls.cert), str(tls.key)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(ours_port)
            wait_port(bare_port)
            wrk(ours_port, 64, 2, lua, bodies)  # warm up at the highest concurrency: buffers and caches
            rss_start = rss_mb(ours.pid)
            served = 0.0
            table = []
            results: dict[str, dict[int, tuple[float, float]]] = {"ddcompat": {}, "bare aiohttp": {}}
            for conns in (1, 16, 64):
                for name, port in (("ddcompat", ours_port), ("bare aiohttp", bare_port)):
                    wrk(port, conns, 1, lua, bodies)  # warm up
                    results[name][conns] = wrk(port, conns, args.duration, lua, bodies)
                    if name == "ddcompat":
                        served += results[name][conns][0] * args.duration
                table.append((conns, results["ddcompat"][conns], results["bare aiohttp"][conns]))
            p50, p99 = asyncio.run(steady(ours_port, tls.ca, [b.read_bytes() for b in bodies], 500, 6.0))
            rss_end = rss_mb(ours.pid)
            wait_port(kopf_port)
            wrk(kopf_port, 16, 1, lua, bodies)
            kopf_rps, kopf_p99 = wrk(kopf_port, 16, args.duration, lua, bodies)
        finally:
            for proc in (ours, bare, kopf_path):
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
    print(
        "machine:",
        os.cpu_count(),
        "cores;",
        "server pinned to core 0, wrk to core 1" if pin else "no pinning",
    )
    print(f"{'conns':>5} | {'ddcompat rps':>12} {'p99 ms':>7} | {'bare rps':>9} {'p99 ms':>7} | ratio")
    for conns, (rps, p99c), (brps, bp99) in table:
        print(f"{conns:>5} | {rps:>12.0f} {p99c:>7.2f} | {brps:>9.0f} {bp99:>7.2f} | {rps / brps:.2f}")
    print(f"steady 500 req/s (ddcompat): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    ours16 = results["ddcompat"][16][0]
    print(
        f"kopf's generic @kopf.on.validate path, same evaluator, c=16: {kopf_rps:.0f} rps, "
        f"p99 {kopf_p99:.2f} ms "
        f"= {kopf_rps / ours16:.2f}x ours ({kopf_rps / results['bare aiohttp'][16][0]:.2f}x bare)"
    )
    print(
        f"ddcompat RSS: {rss_start:.1f} MiB after warm-up, {rss_end:.1f} MiB after ~{served + 3000:,.0f} "
        f"more requests"
    )
    rps16, bare16 = results["ddcompat"][16][0], results["bare aiohttp"][16][0]
    if args.json:
        print(
            json.dumps(
                {
                    "rps": round(rps16),
                    "p50_ms": round(p50, 3),
                    "p99_ms": round(p99, 3),
                    "bare_rps": round(bare16),
                    "ratio": round(rps16 / bare16, 3),
                    "rss_mb_start": round(rss_start, 1),
                    "rss_mb_end": round(rss_end, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
