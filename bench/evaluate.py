"""Benchmark of the pure core: evaluation time per object and `ddcompat check` over 1,000 manifests.

Goals (issue 2): < 100 µs to judge a two-container pod; < 2 s for `check` over 1,000 manifests.
Run: python bench/evaluate.py
"""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ddcompat.facts import workload_from_object
from ddcompat.policy import load_policy
from ddcompat.review import Reviewer
from ddcompat.store import PolicyStore


def two_container_pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"app-{i}",
            "namespace": "shop",
            "annotations": {
                "admission.datadoghq.com/python-lib.version": "v2.18.0",
                "ddcompat.io/web.python-version": "3.12",
                "ddcompat.io/web.frameworks": "django=4.2",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example/web:1",
                    "env": [
                        {"name": "DD_IAST_ENABLED", "value": "true"},
                        {"name": "DD_APPSEC_ENABLED", "value": "true"},
                        {"name": "DD_SERVICE", "value": "web"},
                    ],
                },
                {
                    "name": "worker",
                    "image": "registry.example/worker:1",
                    "env": [{"name": "DD_APPSEC_SCA_ENABLED", "value": "true"}],
                },
            ]
        },
    }


def main() -> None:
    policy = load_policy()
    reviewer = Reviewer(PolicyStore(policy, "enforce"), today=lambda: datetime.date(2026, 11, 24))
    pods = [two_container_pod(i) for i in range(2000)]

    async def loop() -> float:
        start = time.perf_counter()
        for pod in pods:
            await reviewer.judge(workload_from_object(pod))
        return time.perf_counter() - start

    asyncio.run(loop())  # warm
    elapsed = min(asyncio.run(loop()) for _ in range(3))
    per_object_us = elapsed / len(pods) * 1e6
    print(f"evaluate two-container pod: {per_object_us:.1f} µs/object (goal < 100 µs)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.yaml"
        path.write_text(yaml.safe_dump_all(pods[:1000]))
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "ddcompat.cli", "check", "-o", "json", "--offline", str(path)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        assert proc.returncode == 1, proc.stderr
    print(f"ddcompat check over 1,000 manifests: {wall:.2f} s wall, process start included (goal < 2 s)")


if __name__ == "__main__":
    main()
