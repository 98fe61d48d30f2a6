"""Cold and warm image-lookup latency against a real local registry (Debian's docker-registry).

Goal (issue 3): warm < 1 ms from cache; cold ≈ the registry's round trips (HEAD, manifest, config).
Run: python bench/registry.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ddcompat.facts import workload_from_object
from ddcompat.registry import make_lookup
from registry_helpers import Registry, running_registry


def pod(image: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "b"},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


async def measure(host: str, images: list[str]) -> None:
    lookup = make_lookup(insecure=[host], budget=5.0)
    cold = []
    for image in images:
        started = time.perf_counter()
        facts = (await lookup(workload_from_object(pod(image)), [image]))[image]
        cold.append((time.perf_counter() - started) * 1000)
        assert facts.python is not None, facts
    warm = []
    for _ in range(2000):
        image = images[len(warm) % len(images)]
        started = time.perf_counter()
        await lookup(workload_from_object(pod(image)), [image])
        warm.append((time.perf_counter() - started) * 1000)
    await lookup.close()
    warm.sort()
    print(
        f"cold lookup (HEAD + manifest + config): median {statistics.median(cold):.2f} ms, "
        f"max {max(cold):.2f} ms over {len(cold)} images"
    )
    print(
        f"warm lookup (cache): p50 {warm[len(warm) // 2] * 1000:.1f} µs, "
        f"p99 {warm[int(len(warm) * 0.99)] * 1000:.1f} µs (goal < 1 ms)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_registry(Path(tmp)) as (_, port):
        reg = Registry(f"127.0.0.1:{port}", "http")
        images = []
        for i in range(20):
            reg.push_image(f"bench/app{i}", "1", env=[f"PYTHON_VERSION=3.12.{i}"])
            images.append(f"{reg.host}/bench/app{i}:1")
        asyncio.run(measure(reg.host, images))


if __name__ == "__main__":
    main()
