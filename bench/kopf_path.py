"""kopf's generic admission path, for comparison only: `@kopf.on.validate` handlers behind kopf's own
`serve_admission_request` (resource lookup, memo, body/diff objects, handler lifecycle), calling our
evaluator.
Started by bench/admission.py; not part of the product. Uses kopf internals that the product does not.

Usage: python bench/kopf_path.py PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import Any

import kopf
from kopf._cogs.structs import references
from kopf._core.engines import admission
from kopf._core.reactor import inventory

from ddcompat.facts import NotAWorkload, workload_from_object
from ddcompat.policy import load_policy
from ddcompat.review import Reviewer
from ddcompat.store import PolicyStore

RESOURCES = [
    ("", "v1", "pods", "Pod"),
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
]


def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    reviewer = Reviewer(PolicyStore(load_policy(), default_mode="enforce"))
    registry = kopf.OperatorRegistry()

    # kopf routes /{handler id}: one handler with id "validate" for every kind, as our server has one path
    @kopf.on.validate(kopf.EVERYTHING, id="validate", registry=registry)
    async def validate(body: Any, warnings: list[str], **_: Any) -> None:
        try:
            workload = workload_from_object(dict(body))
        except NotAWorkload:
            return
        judgement = await reviewer.judge(workload)
        warnings.extend(judgement.decision.warnings)
        if not judgement.decision.allowed:
            raise kopf.AdmissionError(judgement.decision.message, code=403)

    settings = kopf.OperatorSettings()
    insights = references.Insights()
    for group, version, plural, kind in RESOURCES:
        insights.webhook_resources.add(
            references.Resource(group=group, version=version, plural=plural, kind=kind, namespaced=True)
        )
    fn = functools.partial(
        admission.serve_admission_request,
        settings=settings,
        registry=registry,
        insights=insights,
        memories=inventory.ResourceMemories(),
        memobase=kopf.Memo(),
        indices={},
    )
    server = kopf.WebhookServer(addr="127.0.0.1", port=port, certfile=cert, pkeyfile=key)

    async def run() -> None:
        async for _ in server(fn):  # type: ignore[arg-type]
            pass

    asyncio.run(run())


if __name__ == "__main__":
    main()
