"""Start the real `ddcompat serve --local` process and talk to it like kube-apiserver does."""

from __future__ import annotations

import copy
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    ca: Path
    cert_dir: Path
    output: list[str]  # everything the server printed, drained by a thread so its pipe never fills

    def wait_output(self, timeout: float = 10) -> str:
        self.proc.wait(timeout)
        time.sleep(0.1)
        return "".join(self.output)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self, *extra_cas: Path) -> ssl.SSLContext:
        """Verify the server like kube-apiserver verifies with the webhook's caBundle."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        for ca in extra_cas:
            ctx.load_verify_locations(cafile=str(ca))
        return ctx

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextmanager
def running_server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    port = free_port()
    cert_dir = tmp / "certs"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ddcompat.cli",
            "serve",
            "--local",
            "--port",
            str(port),
            "--cert-dir",
            str(cert_dir),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=full_env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    banner = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        banner += line
        if "admission webhook on" in line:
            break
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {banner}")
    else:
        proc.kill()
        raise AssertionError(f"server did not start: {banner}")
    output: list[str] = [banner]
    drain = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    drain.start()
    try:
        yield Server(proc, port, cert_dir / "ca.crt", cert_dir, output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def admission_review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    namespace: str | None = None,
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    kind = obj["kind"]
    group, _, version = obj["apiVersion"].rpartition("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "namespace": namespace or obj["metadata"].get("namespace", "default"),
            "name": obj["metadata"].get("name", ""),
            "operation": operation,
            "userInfo": {"username": "dev@example.com"},
            "object": obj,
            "oldObject": copy.deepcopy(old) if old is not None else None,
            "dryRun": dry_run,
        },
    }


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """`ddcompat serve --local` expected to stop at start-up (bad certificate, bad policy)."""
    return subprocess.run(
        [sys.executable, "-m", "ddcompat.cli", "serve", "--local", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
