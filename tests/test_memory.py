"""Memory stays flat: 20,000 UPDATE reviews of objects nobody watches must not grow the server (issue 7).

kopf's generic admission path keeps a memo per object uid for such UPDATEs; our request path keeps nothing
per request. Measured as the server process's RSS after a warm-up and after the run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from pathlib import Path

import aiohttp

from conftest import make_pod
from server_helpers import admission_review, running_server

TOTAL, WARMUP, CONCURRENCY = 20_000, 2_000, 16


def test_twenty_thousand_updates_do_not_grow_memory(tmp_path: Path) -> None:
    old = make_pod(kind="Deployment", ddtrace="2.20.0", python="3.12", capabilities="iast")
    bodies = []
    for i in range(50):  # a mix: scale-only UPDATEs (fast path) and template changes (evaluated)
        new = copy.deepcopy(old)
        new["metadata"]["uid"] = str(uuid.uuid4())
        if i % 2:
            new["spec"]["replicas"] = i
        else:
            new["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry.example/app:{i}"
        bodies.append(new)

    with running_server(tmp_path, "--mode", "enforce") as server:

        async def drive(count: int) -> int:
            ok = 0
            ctx = server.ssl_context()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

                async def worker(n: int) -> None:
                    nonlocal ok
                    for i in range(n):
                        review = admission_review(bodies[i % len(bodies)], operation="UPDATE", old=old)
                        async with session.post(
                            f"{server.url}/validate", ssl=ctx, data=json.dumps(review)
                        ) as resp:
                            ok += resp.status == 200

                await asyncio.gather(*(worker(count // CONCURRENCY) for _ in range(CONCURRENCY)))
            return ok

        assert asyncio.run(drive(WARMUP)) == WARMUP
        before = server.rss_mb()
        assert asyncio.run(drive(TOTAL)) == TOTAL
        after = server.rss_mb()
    print(f"RSS before {before:.1f} MiB, after {TOTAL} UPDATEs {after:.1f} MiB")
    assert after - before < 8.0, (before, after)
