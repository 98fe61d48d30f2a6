"""The Helm chart rendered by real helm (v4): lint, Kubernetes 1.30–1.35 schemas, values schema, TLS material,
the safety defaults, and a kube-apiserver-shaped end-to-end run against the rendered configuration."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from conftest import make_pod
from server_helpers import ROOT, admission_review, running_server

CHART = ROOT / "charts" / "ddcompat"
VALUES = {"default": None, **{p.stem: p for p in sorted((CHART / "ci").glob("*.yaml"))}}
NAMESPACE = "ddcompat-system"
HELM = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
pytestmark = pytest.mark.skipif(not Path(HELM).exists(), reason="helm is fetched by scripts/fetch-k8s-tools")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


def render(values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "-n", NAMESPACE]
    if values:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, [o["kind"] for o in objects]
    return found[0]


@pytest.mark.parametrize("name", list(VALUES))
def test_helm_lint(name: str) -> None:
    args = ["lint", str(CHART), "--strict"] + (["-f", str(VALUES[name])] if VALUES[name] else [])
    proc = helm(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


BUILTIN_PREFIXES = ("v1", "apps/", "batch/", "policy/", "rbac.", "admissionregistration.", "networking.")


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("version", ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"])
def test_rendered_objects_validate_against_kubernetes_schemas(name: str, version: str) -> None:
    checked = 0
    for obj in render(VALUES[name]):
        if not obj["apiVersion"].startswith(BUILTIN_PREFIXES):
            continue  # custom resources (ours, cert-manager, prometheus-operator) have no upstream schema
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 8


def test_custom_resources_use_the_crds_we_ship() -> None:
    objects = render(VALUES["enforce-values"])
    policy = one(objects, "CompatibilityPolicy")
    crd = yaml.safe_load((CHART / "crds" / "compatibilitypolicy.yaml").read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert set(policy["spec"]) <= set(props)
    assert policy["spec"]["mode"] in props["mode"]["enum"]
    assert set(policy["spec"]["severities"]) <= set(props["severities"]["properties"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("webhook.mode=strict", "webhook/mode"),
        ("webhook.failurePolicy=Maybe", "failurePolicy"),
        ("webhook.timeoutSeconds=31", "timeoutSeconds"),
        ("tls.mode=manual", "tls/mode"),
        ("replicaCount=0", "replicaCount"),
        ("registry.budgetSeconds=10", "budgetSeconds"),
        ("policy.default.severities.RELEASE_EOL=panic", "RELEASE_EOL"),
        ("webhook.excludeNamespaces[0]=Bad_Name", "excludeNamespaces"),
        ("unknownKey=1", "unknownKey"),
    ],
)
def test_values_schema_rejects_bad_values(setting: str, message: str) -> None:
    proc = helm("template", "rel", str(CHART), "--set", setting)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_safe_defaults() -> None:
    objects = render()
    vwc = one(objects, "ValidatingWebhookConfiguration")
    (hook,) = vwc["webhooks"]
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] == 5
    assert hook["sideEffects"] == "NoneOnDryRun" and hook["matchPolicy"] == "Equivalent"
    assert (
        hook["admissionReviewVersions"] == ["v1"] and hook["clientConfig"]["service"]["path"] == "/validate"
    )
    excluded = hook["namespaceSelector"]["matchExpressions"]
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", NAMESPACE],
    } in excluded
    assert {"key": "ddcompat.io/mode", "operator": "NotIn", "values": ["off"]} in excluded
    resources = {r for rule in hook["rules"] for r in rule["resources"]}
    assert resources == {
        "pods",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
    }
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"])
    assert "matchConditions" not in hook

    deploy = one(objects, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deploy["spec"]["replicas"] == 2 and pod["topologySpreadConstraints"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert (
        sc["readOnlyRootFilesystem"]
        and not sc["allowPrivilegeEscalation"]
        and sc["capabilities"]["drop"] == ["ALL"]
    )
    assert container["resources"]["limits"]["memory"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--mode=warn" in container["args"]
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert one(objects, "CompatibilityPolicy")["spec"]["mode"] == "warn"

    rules = one(objects, "ClusterRole")["rules"]
    verbs = {
        (group, res): tuple(rule["verbs"])
        for rule in rules
        for group in rule["apiGroups"]
        for res in rule["resources"]
    }
    assert ("", "secrets") not in verbs  # only with registry.readPullSecrets
    assert all(
        v in ("get", "list", "watch", "create", "patch", "delete") for vs in verbs.values() for v in vs
    )
    assert verbs[("wgpolicyk8s.io", "policyreports")] == ("get", "list", "create", "patch", "delete")
    assert "delete" not in {v for key, vs in verbs.items() if key[0] != "wgpolicyk8s.io" for v in vs}
    assert verbs[("ddcompat.io", "compatibilitypolicies/status")] == ("patch",)
    assert verbs[("ddcompat.io", "compatibilitypolicies")] == ("get", "list", "watch")
    with_secrets = {
        r for rule in one(render(VALUES["enforce-values"]), "ClusterRole")["rules"] for r in rule["resources"]
    }
    assert "secrets" in with_secrets


def test_enforce_and_match_conditions_and_cert_manager_values() -> None:
    enforce = render(VALUES["enforce-values"])
    hook = one(enforce, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    assert "monitoring" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    args = one(enforce, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--mode=enforce" in args and "--policy-dir=/etc/ddcompat/policy" in args
    override = yaml.safe_load(one(enforce, "ConfigMap")["data"]["injection.yaml"])
    assert override["version"] == "acme-2026.11"
    assert {o["kind"] for o in enforce} >= {"NetworkPolicy", "ServiceMonitor", "CustomResourceDefinition"}

    matched = one(render(VALUES["match-conditions-values"]), "ValidatingWebhookConfiguration")["webhooks"][0]
    assert matched["matchConditions"][0]["name"] == "datadog-signal"
    assert "DD_" in matched["matchConditions"][0]["expression"]

    cm = render(VALUES["cert-manager-values"])
    vwc = one(cm, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/rel-ddcompat"
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    certificate = next(
        o for o in cm if o["kind"] == "Certificate" and o["metadata"]["name"] == "rel-ddcompat"
    )
    assert f"rel-ddcompat.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["secretName"] == "rel-ddcompat-tls"


def tls_material(objects: list[dict[str, Any]]) -> tuple[bytes, bytes, bytes]:
    secret = one(objects, "Secret")
    ca_bundle = base64.b64decode(
        one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]
    )
    return ca_bundle, base64.b64decode(secret["data"]["tls.crt"]), base64.b64decode(secret["data"]["tls.key"])


def test_ca_bundle_verifies_the_serving_certificate_for_the_service_name() -> None:
    ca_bundle, cert_pem, _ = tls_material(render())
    ca = x509.load_pem_x509_certificate(ca_bundle)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert f"rel-ddcompat.{NAMESPACE}.svc" in names


def test_ddcompat_check_finds_nothing_wrong_in_the_chart(tmp_path: Path) -> None:
    proc = helm("template", "rel", str(CHART), "-n", NAMESPACE)
    out = subprocess.run(
        [sys.executable, "-m", "ddcompat.cli", "check", "-o", "json", "--offline", "--fail-on-warn", "-"],
        input=proc.stdout,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout
    results = json.loads(out.stdout)["results"]
    assert sorted(r["object"]["kind"] for r in results) == [
        "Deployment",
        "Pod",
    ]  # the webhook, the helm-test Pod
    assert all(r["decision"] == "allow" for r in results)


# --- end to end, shaped like kube-apiserver ----------------------------------------------------------------


def _rule_matches(hook: dict[str, Any], group: str, resource: str, operation: str) -> bool:
    return any(
        (group in rule["apiGroups"] or "*" in rule["apiGroups"])
        and resource in rule["resources"]
        and operation in rule["operations"]
        for rule in hook["rules"]
    )


def _namespace_matches(hook: dict[str, Any], labels: dict[str, str]) -> bool:
    for expr in hook.get("namespaceSelector", {}).get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
    return True


class FakeApiServer:
    """What kube-apiserver does with a ValidatingWebhookConfiguration, minus everything else."""

    def __init__(self, hook: dict[str, Any], address: str, session: aiohttp.ClientSession) -> None:
        self.hook, self.address, self.session = hook, address, session
        self.ssl = ssl.create_default_context(
            cadata=base64.b64decode(hook["clientConfig"]["caBundle"]).decode()
        )
        service = hook["clientConfig"]["service"]
        self.server_name = f"{service['name']}.{service['namespace']}.svc"
        self.called = 0

    async def admit(
        self, obj: dict[str, Any], ns_labels: dict[str, str], operation: str = "CREATE"
    ) -> dict[str, Any]:
        group = obj["apiVersion"].rpartition("/")[0]
        resource = obj["kind"].lower() + "s"
        if not _rule_matches(self.hook, group, resource, operation) or not _namespace_matches(
            self.hook, ns_labels
        ):
            return {"allowed": True, "called": False}
        review = admission_review(
            obj, operation=operation, namespace=ns_labels["kubernetes.io/metadata.name"]
        )
        url = (
            f"https://{self.address}{self.hook['clientConfig']['service']['path']}"
            f"?timeout={self.hook['timeoutSeconds']}s"
        )
        self.called += 1
        try:
            async with self.session.post(
                url,
                json=review,
                ssl=self.ssl,
                server_hostname=self.server_name,
                timeout=aiohttp.ClientTimeout(total=self.hook["timeoutSeconds"]),
            ) as resp:
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            if self.hook["failurePolicy"] == "Ignore":
                return {"allowed": True, "called": True, "failed_open": True}
            return {"allowed": False, "called": True, "error": str(exc)}
        response = body["response"]
        assert response["uid"] == review["request"]["uid"]
        return {**response, "called": True}


async def apiserver_scenario(hook: dict[str, Any], port: int, mode: str, proc: subprocess.Popen[str]) -> None:
    async with aiohttp.ClientSession() as session:
        api = FakeApiServer(hook, f"127.0.0.1:{port}", session)
        shop = {"kubernetes.io/metadata.name": "shop"}
        bad = make_pod(kind="Deployment", ddtrace="2.20.0", python="3.12", capabilities="iast")
        answer = await api.admit(bad, shop)
        assert answer["called"]
        if mode == "enforce":
            assert answer["allowed"] is False and "CAPABILITY_UNSUPPORTED" in answer["status"]["message"]
        else:
            assert answer["allowed"] is True and answer["warnings"][0].startswith("[would deny]")
        assert answer["auditAnnotations"]["decision"] in ("deny", "warn")
        # kube-system, the release namespace and mode=off namespaces never reach the webhook
        for labels in (
            {"kubernetes.io/metadata.name": "kube-system"},
            {"kubernetes.io/metadata.name": NAMESPACE},
            {"kubernetes.io/metadata.name": "legacy", "ddcompat.io/mode": "off"},
        ):
            assert await api.admit(bad, labels) == {"allowed": True, "called": False}
        # kinds outside the rules are never sent
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
        assert (await api.admit(svc, shop))["called"] is False
        # the server goes away: failurePolicy decides
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        down = await api.admit(bad, shop)
        assert down["called"] and down["allowed"] is (hook["failurePolicy"] == "Ignore")


def test_kube_apiserver_shaped_end_to_end(tmp_path: Path) -> None:
    for name, failure in (("default", "Ignore"), ("enforce-values", "Fail")):
        objects = render(VALUES[name])
        hook = one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]
        assert hook["failurePolicy"] == failure
        _, cert, key = tls_material(objects)
        (tmp_path / "tls.crt").write_bytes(cert)
        (tmp_path / "tls.key").write_bytes(key)
        mode = next(
            a
            for a in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            if a.startswith("--mode=")
        ).split("=")[1]
        with running_server(
            tmp_path / name,
            "--tls-cert",
            str(tmp_path / "tls.crt"),
            "--tls-key",
            str(tmp_path / "tls.key"),
            "--mode",
            mode,
            "--now",
            "2026-11-24",
            "--namespace",
            NAMESPACE,
            env={"DDCOMPAT_DRAIN_SECONDS": "0"},
        ) as server:
            asyncio.run(apiserver_scenario(hook, server.port, mode, server.proc))


def test_dockerfile_properties() -> None:
    """No Docker engine here: check what the image promises from the Dockerfile itself."""
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and "AS build" in stages[0]  # the wheel is built in a builder stage
    base = next(line for line in text.splitlines() if line.startswith("ARG PYTHON_IMAGE="))
    assert "slim" in base and ":latest" not in base and base.count(".") >= 2  # slim and pinned to a patch
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["ddcompat"]' in text and 'CMD ["serve"]' in text
    assert "org.opencontainers.image.title" in text and "org.opencontainers.image.source" in text
    assert "HOME=/tmp" in text  # writable only through the chart's emptyDir at /tmp
    tmp_mount = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "tmp", "mountPath": "/tmp"} in tmp_mount
