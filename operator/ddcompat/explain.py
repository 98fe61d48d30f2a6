"""``ddcompat explain``: the verdict for a version pair and the table rows that produced it."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .facts import workload_from_object
from .manifests import InputError
from .policy import load_policy
from .review import Reviewer
from .store import PolicyStore
from .versions import InvalidVersion, in_range, parse_version


def explain(args: argparse.Namespace) -> tuple[str, str]:
    policy = load_policy(args.policy_dir)
    for label, value in (("--ddtrace", args.ddtrace), ("--python", args.python), ("--agent", args.agent)):
        if value is None:
            continue
        try:
            parse_version(value)
        except InvalidVersion:
            raise InputError(f"{label} {value!r} is not a version") from None
    annotations = {"ddcompat.io/ddtrace-version": args.ddtrace, "ddcompat.io/python-version": args.python}
    if args.capability:
        annotations["ddcompat.io/capabilities"] = ",".join(args.capability)
    if args.framework:
        annotations["ddcompat.io/frameworks"] = ",".join(args.framework)
    if args.agent:
        annotations["ddcompat.io/agent-version"] = args.agent
    selector = {}
    if args.os:
        selector["kubernetes.io/os"] = args.os
    if args.arch:
        selector["kubernetes.io/arch"] = args.arch
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "explain", "namespace": "default", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "app"}], "nodeSelector": selector},
    }
    store = PolicyStore(policy, default_mode=args.mode)
    now = args.now
    reviewer = Reviewer(store, today=(lambda: now) if now else None)
    judgement = asyncio.run(reviewer.judge(workload_from_object(pod)))

    version = parse_version(args.ddtrace)
    out = [f"verdict: {judgement.decision.decision} (mode {args.mode}, policy {policy.version})"]
    for f in judgement.findings:
        out.append(f"  {f.severity:<5} {f.code}: {f.message}")
    if not judgement.findings:
        out.append("  no findings")
    out.append("\ntable rows:")
    line = policy.line_of(version)
    if line:
        until = f" until {line.maintenance_until}" if line.maintenance_until else ""
        agent = f", minimum Agent {line.min_agent}" if line.min_agent else ", no minimum Agent"
        out.append(
            f"  release line {line.name} ({line.versions}): {line.support}{until}{agent}, newest "
            f"{line.newest}  [{policy.cite(line.source)}]"
        )
        for row in policy.runtimes:
            if in_range(line.newest, row.ddtrace):
                out.append(
                    f"  runtime: {row.os_text:<7} {row.cpu_text:<22} {row.runtime} {row.python_text:<14} "
                    f"ddtrace {row.ddtrace_text}"
                )
    else:
        out.append(f"  ddtrace {version}: no release line")
    for cap_id in args.capability:
        cap = policy.capabilities[cap_id]
        preview = " (Preview)" if cap.preview else ""
        out.append(
            f"  capability {cap_id}: {cap.name}, minimum ddtrace {cap.min_ddtrace}{preview}"
            f"  [{policy.cite(cap.source)}]"
        )
    return "\n".join(out), judgement.decision.decision
