"""One AdmissionReview in, one AdmissionReview out: the single request path of the webhook,
``ddcompat review`` and (through `evaluate_workload`) ``ddcompat check``.

The webhook server hands the parsed body straight to `review_admission` (no kopf admission machinery:
it measured 0.28× a bare aiohttp endpoint and keeps a memo per UPDATE of unwatched objects).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .decide import Decision, decide
from .evaluate import Finding, evaluate_pod
from .facts import ImageFacts, NotAWorkload, Workload, extract_pod_facts, workload_from_object
from .store import Effective, PolicyStore

ADMISSION_API: Final = "admission.k8s.io/v1"
JUDGED_OPERATIONS: Final = ("CREATE", "UPDATE")
JUDGED_SPEC_KEYS: Final = ("containers", "initContainers", "nodeSelector", "affinity")

# (images, arch) → registry facts by image; the registry module provides it, `None` means offline.
ImageFactsSource = Callable[[Workload, Sequence[str]], Awaitable[Mapping[str, ImageFacts]]]


class BadReview(ValueError):
    """The body is not an AdmissionReview we can answer: HTTP 400 with this reason."""


@dataclass(frozen=True)
class Judgement:
    """The verdict on one object, as `check` prints it and `review` answers it."""

    decision: Decision
    findings: tuple[Finding, ...]
    effective: Effective


@dataclass
class Outcome:
    """A reviewed request: the response to send and what the log line and metrics need."""

    response: dict[str, Any]
    uid: str
    decision: str
    mode: str
    codes: tuple[str, ...] = ()
    kind: str = ""
    operation: str = ""
    namespace: str = ""
    name: str = ""
    user: str = ""
    dry_run: bool = False
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    workload: Workload | None = None
    started: float = field(default_factory=time.perf_counter)


class Reviewer:
    """Holds what every request needs: the policy store, the clock and the image lookup."""

    def __init__(
        self,
        store: PolicyStore,
        today: Callable[[], datetime.date] | None = None,
        images: ImageFactsSource | None = None,
    ) -> None:
        self.store = store
        self.today = today or (lambda: datetime.datetime.now(datetime.UTC).date())
        self.images = images

    async def judge(self, workload: Workload, effective: Effective | None = None) -> Judgement:
        effective = effective or self.store.resolve(workload.namespace)
        if effective.mode == "off":
            return Judgement(Decision("allow", True), (), effective)
        policy = self.store.policy
        pod = extract_pod_facts(workload, policy)
        if self.images is not None:
            # the registry is consulted only for facts that no higher source gave
            wanted = [
                c.image
                for c in pod.containers
                if c.image and (c.ddtrace is None or c.python is None) and c.ddtrace_unresolved is None
            ]
            if wanted:
                image_facts: Mapping[str, ImageFacts] = await self.images(workload, wanted)
                pod = extract_pod_facts(workload, policy, image_facts)
        findings = evaluate_pod(pod, policy, self.today(), effective.severities, effective.require_versions)
        return Judgement(decide(findings, effective.mode, workload.controlled), tuple(findings), effective)

    async def review(self, body: Any) -> Outcome:
        """Answer one AdmissionReview (v1). Raises `BadReview` for a body that is not one."""
        request = _request(body)
        uid = request["uid"]
        kind_info: Mapping[str, Any] = request["kind"] if isinstance(request.get("kind"), dict) else {}
        kind = str(kind_info.get("kind") or "")
        operation = str(request.get("operation") or "")
        namespace = str(request.get("namespace") or "")
        user_info: Mapping[str, Any] = (
            request["userInfo"] if isinstance(request.get("userInfo"), dict) else {}
        )
        outcome = Outcome(
            response={},
            uid=uid,
            decision="allow",
            mode="",
            kind=kind,
            operation=operation,
            namespace=namespace,
            name=str(request.get("name") or ""),
            user=str(user_info.get("username") or ""),
            dry_run=request.get("dryRun") is True,
        )
        if namespace and self.store.is_exempt(namespace):
            outcome.mode = "exempt"
            return self._answer(outcome, Decision("allow", True))
        obj = request.get("object")
        if operation not in JUDGED_OPERATIONS or kind not in _KINDS:
            outcome.mode = "skip"
            return self._answer(outcome, Decision("allow", True))
        if not isinstance(obj, dict):
            raise BadReview(f"request.object must be an object for {operation} {kind}")
        effective = self.store.resolve(namespace or "default")
        outcome.mode = effective.mode
        try:
            workload = workload_from_object(
                {**obj, "kind": kind, "apiVersion": _api_version(kind_info)}, namespace or None
            )
        except NotAWorkload as exc:
            raise BadReview(str(exc)) from None
        outcome.workload = workload
        outcome.name = outcome.name or workload.name
        if operation == "UPDATE" and _unchanged(workload, request.get("oldObject"), kind, kind_info):
            return self._answer(outcome, Decision("allow", True))
        judgement = await self.judge(workload, effective)
        outcome.findings = judgement.findings
        outcome.codes = tuple(sorted({f.code for f in judgement.findings}))
        return self._answer(outcome, judgement.decision)

    def _answer(self, outcome: Outcome, decision: Decision) -> Outcome:
        outcome.decision = decision.decision
        response: dict[str, Any] = {
            "uid": outcome.uid,
            "allowed": decision.allowed,
            "auditAnnotations": {
                "decision": decision.decision,
                "codes": ",".join(outcome.codes),
                "mode": outcome.mode,
                "policy-version": self.store.policy.version,
            },
        }
        if not decision.allowed:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": decision.message}
        if decision.warnings:
            response["warnings"] = list(decision.warnings)
        outcome.response = {"apiVersion": ADMISSION_API, "kind": "AdmissionReview", "response": response}
        return outcome


_KINDS: Final = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")


def _request(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise BadReview("body is not a JSON object")
    if body.get("kind") != "AdmissionReview":
        raise BadReview(f"kind must be AdmissionReview, got {body.get('kind')!r}")
    if body.get("apiVersion") != ADMISSION_API:
        raise BadReview(
            f"apiVersion must be {ADMISSION_API}, got {body.get('apiVersion')!r} "
            "(set admissionReviewVersions: [v1])"
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is missing or empty")
    return request


def _api_version(kind_info: Mapping[str, Any]) -> str:
    group, version = kind_info.get("group") or "", kind_info.get("version") or "v1"
    return f"{group}/{version}" if group else str(version)


def _unchanged(workload: Workload, old: Any, kind: str, kind_info: Mapping[str, Any]) -> bool:
    """An UPDATE is judged only when what we judge changed: scaling, status and label edits pass."""
    if not isinstance(old, dict):
        return False
    try:
        before = workload_from_object({**old, "kind": kind, "apiVersion": _api_version(kind_info)})
    except NotAWorkload:
        return False
    if before.template_metadata.get("annotations") != workload.template_metadata.get("annotations"):
        return False
    return all(before.pod_spec.get(k) == workload.pod_spec.get(k) for k in JUDGED_SPEC_KEYS)
