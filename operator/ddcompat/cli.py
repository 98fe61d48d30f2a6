"""The ``ddcompat`` command: check, review, explain, policy validate, serve.

Exit status is a contract for CI gates: 0 no ``deny``; 1 some ``deny`` (or any finding with
``--fail-on-warn``); 2 usage or input error, with a one-line message on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .decide import MODES
from .facts import NotAWorkload, workload_from_object
from .manifests import InputError, read_documents
from .policy import CAPABILITY_IDS, PolicyError, load_policy
from .review import BadReview, ImageFactsSource, Reviewer
from .store import PolicyStore

EXIT_OK, EXIT_DENY, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"ddcompat: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _common(p: argparse.ArgumentParser, *, mode_default: str, registry: bool = True) -> None:
    p.add_argument(
        "--mode",
        choices=MODES,
        default=mode_default,
        help=f"mode when no namespace label or CompatibilityPolicy says otherwise (default {mode_default})",
    )
    p.add_argument("--now", type=_date, help="judge as of this date (YYYY-MM-DD); default today (UTC)")
    p.add_argument("--policy-dir", help="policy override file or directory (replaces whole sections)")
    if registry:
        p.add_argument("--offline", action="store_true", help="no registry access: image facts absent")
        p.add_argument(
            "--insecure-registry",
            action="append",
            default=[],
            metavar="HOST:PORT",
            help="plain HTTP for this registry (repeatable)",
        )
        p.add_argument(
            "--registry-budget",
            type=float,
            default=2.0,
            metavar="SECONDS",
            help="time budget for all image lookups of one object (default 2)",
        )
        p.add_argument(
            "--registry-ca",
            default=None,
            metavar="FILE",
            help="extra CA bundle for registries (system CAs are always trusted)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ddcompat",
        description="Check ddtrace (Python) workloads against Datadog's compatibility tables.",
    )
    parser.add_argument("--version", action="version", version=f"ddcompat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = sub.add_parser("check", help="evaluate manifests exactly as the webhook would")
    check.add_argument("paths", nargs="*", metavar="FILES|DIRS|-")
    check.add_argument("-o", "--output", choices=("text", "json"), default="text")
    check.add_argument("--fail-on-warn", action="store_true", help="exit 1 when any result has a finding")
    _common(check, mode_default="enforce")

    review = sub.add_parser("review", help="answer one AdmissionReview (v1) from a file or stdin")
    review.add_argument("path", nargs="?", default="-", metavar="FILE|-")
    _common(review, mode_default="enforce")

    explain = sub.add_parser("explain", help="show the verdict and the table rows behind it")
    explain.add_argument("--ddtrace", required=True, metavar="V")
    explain.add_argument("--python", required=True, metavar="V")
    explain.add_argument("--capability", action="append", default=[], choices=CAPABILITY_IDS)
    explain.add_argument("--framework", action="append", default=[], metavar="NAME=V")
    explain.add_argument("--os", default=None, help="kubernetes.io/os (default linux)")
    explain.add_argument("--arch", default=None, help="kubernetes.io/arch (default: not judged)")
    explain.add_argument("--agent", default=None, metavar="V", help="Datadog Agent version")
    _common(explain, mode_default="enforce", registry=False)

    pol = sub.add_parser("policy", help="policy files")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    validate = pol_sub.add_parser("validate", help="check a policy override before it is mounted")
    validate.add_argument("path", metavar="FILE|DIR")

    serve = sub.add_parser("serve", help="run the admission webhook")
    serve.add_argument(
        "--local",
        action="store_true",
        help="no cluster: HTTPS on 127.0.0.1 with a generated self-signed certificate",
    )
    serve.add_argument(
        "--host", default=None, help="listen address (default 127.0.0.1 with --local, else 0.0.0.0)"
    )
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--cert-dir", default=None, help="--local: keep the generated CA and certificate here")
    serve.add_argument(
        "--tls-cert", default=os.environ.get("DDCOMPAT_TLS_CERT"), help="serving certificate (PEM)"
    )
    serve.add_argument("--tls-key", default=os.environ.get("DDCOMPAT_TLS_KEY"), help="serving key (PEM)")
    serve.add_argument(
        "--audit-interval",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="in the cluster: re-audit running workloads this often (0: off; default 600)",
    )
    serve.add_argument(
        "--read-pull-secrets",
        action="store_true",
        help="in the cluster: read the pods' dockerconfigjson pull secrets for registry access",
    )
    serve.add_argument("--exempt-namespace", action="append", default=[], metavar="NS")
    serve.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", ""),
        help="the webhook's own namespace (never intercepted)",
    )
    _common(serve, mode_default="warn")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "review":
            return _review(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "policy":
            return _policy_validate(args)
        if args.command == "serve":
            from .server import run_serve

            return run_serve(args)
    except (InputError, PolicyError) as exc:
        print(f"ddcompat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


def _reviewer(args: argparse.Namespace) -> Reviewer:
    policy = load_policy(args.policy_dir)
    store = PolicyStore(policy, default_mode=args.mode)
    now: datetime.date | None = args.now
    return Reviewer(store, today=(lambda: now) if now else None, images=image_lookup(args))


def image_lookup(args: argparse.Namespace) -> ImageFactsSource | None:
    """The registry lookup the flags ask for; `None` with --offline (image facts absent)."""
    if getattr(args, "offline", True):
        return None
    from .registry import make_lookup

    return make_lookup(
        insecure=tuple(args.insecure_registry), budget=args.registry_budget, ca_bundle=args.registry_ca
    )


def _check(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    docs = list(read_documents(args.paths))
    results: list[dict[str, Any]] = []

    async def run() -> None:
        for doc in docs:
            try:
                workload = workload_from_object(doc.obj)
            except NotAWorkload:
                continue
            judgement = await reviewer.judge(workload)
            results.append(
                {
                    "object": {
                        "apiVersion": workload.api_version,
                        "kind": workload.kind,
                        "namespace": workload.namespace,
                        "name": workload.name,
                    },
                    "decision": judgement.decision.decision,
                    "findings": [f.as_dict() for f in judgement.findings],
                }
            )

    asyncio.run(run())
    if args.output == "json":
        print(json.dumps({"results": results}, indent=2))
    else:
        _print_text(results, args.mode, reviewer.store.policy.version)
    if any(r["decision"] == "deny" for r in results):
        return EXIT_DENY
    if args.fail_on_warn and any(r["findings"] for r in results):
        return EXIT_DENY
    return EXIT_OK


def _print_text(results: list[dict[str, Any]], mode: str, version: str) -> None:
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    paint = {"deny": "\033[31m", "warn": "\033[33m", "allow": "\033[32m"}

    def c(word: str, key: str) -> str:
        return f"{paint[key]}{word}\033[0m" if colour else word

    counts = {"deny": 0, "warn": 0, "allow": 0}
    for r in results:
        o = r["object"]
        counts[r["decision"]] += 1
        print(f"{c(r['decision'].upper().ljust(5), r['decision'])}  {o['kind']} {o['namespace']}/{o['name']}")
        for f in r["findings"]:
            mark = c("✗", "deny") if f["severity"] == "deny" else c("!", "warn")
            print(f"   {mark} {f['code']:<31} {f['container']}: {f['message']}")
    print(
        f"\n{len(results)} workload(s): {counts['deny']} deny, {counts['warn']} warn, "
        f"{counts['allow']} allow (mode {mode}, policy {version})"
    )


def _review(args: argparse.Namespace) -> int:
    reviewer = _reviewer(args)
    try:
        if args.path == "-":
            text = sys.stdin.read()
        else:
            with open(args.path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise InputError(f"{args.path}: {exc.strerror or exc}") from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{args.path}: not JSON: {exc}") from None
    try:
        outcome = asyncio.run(reviewer.review(body))
    except BadReview as exc:
        raise InputError(f"{args.path}: not an AdmissionReview: {exc}") from None
    print(json.dumps(outcome.response, indent=2))
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from .explain import explain

    text, decision = explain(args)
    print(text)
    return EXIT_DENY if decision == "deny" else EXIT_OK


def _policy_validate(args: argparse.Namespace) -> int:
    policy = load_policy(args.path)
    print(
        f"ok: policy {policy.version}: {len(policy.release_lines)} release lines, "
        f"{len(policy.runtimes)} runtime rows, {len(policy.capabilities)} capabilities "
        f"({', '.join(policy.files)})"
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
