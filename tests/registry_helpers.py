"""A real OCI registry for the tests: Debian's `docker-registry` on loopback, images pushed over HTTP."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server_helpers import free_port

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    scheme: str
    auth: tuple[str, str] | None = None
    cafile: Path | None = None
    bearer: str | None = None

    def _open(self, req: urllib.request.Request) -> Any:
        if self.bearer:
            req.add_header("Authorization", f"Bearer {self.bearer}")
        elif self.auth:
            import base64

            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        ctx = ssl.create_default_context(cafile=str(self.cafile)) if self.cafile else None
        return urllib.request.urlopen(req, timeout=10, context=ctx)

    def push_blob(self, repo: str, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.Request(f"{self.scheme}://{self.host}/v2/{repo}/blobs/uploads/", method="POST")
        with self._open(start) as resp:
            location = resp.headers["Location"]
        if location.startswith("/"):
            location = f"{self.scheme}://{self.host}{location}"
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(
            f"{location}{sep}digest={digest}",
            data=data,
            method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        )
        with self._open(put):
            pass
        return digest, len(data)

    def push_manifest(self, repo: str, ref: str, manifest: dict[str, Any], media: str) -> tuple[str, int]:
        body = json.dumps(manifest).encode()
        req = urllib.request.Request(
            f"{self.scheme}://{self.host}/v2/{repo}/manifests/{ref}",
            data=body,
            method="PUT",
            headers={"Content-Type": media},
        )
        with self._open(req):
            pass
        return "sha256:" + hashlib.sha256(body).hexdigest(), len(body)

    def push_image(
        self,
        repo: str,
        tag: str | None,
        *,
        env: list[str] | None = None,
        labels: dict[str, str] | None = None,
        arch: str = "amd64",
        docker: bool = False,
        layers: list[bytes] | None = None,
    ) -> tuple[str, int]:
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Env": env or [], "Labels": labels or {}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        cdigest, csize = self.push_blob(repo, json.dumps(config).encode())
        pushed = [self.push_blob(repo, layer) for layer in (layers or [f"layer of {repo} {arch}".encode()])]
        media = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": media,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json"
                if docker
                else "application/vnd.oci.image.config.v1+json",
                "digest": cdigest,
                "size": csize,
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                for d, s in pushed
            ],
        }
        return self.push_manifest(
            repo,
            tag or "sha256:" + hashlib.sha256(json.dumps(manifest).encode()).hexdigest(),
            manifest,
            media,
        )

    def push_index(
        self,
        repo: str,
        tag: str,
        entries: list[tuple[str, str | None, tuple[str, int]]],
        docker: bool = False,
    ) -> str:
        media = DOCKER_LIST if docker else OCI_INDEX
        child = DOCKER_MANIFEST if docker else OCI_MANIFEST
        index = {
            "schemaVersion": 2,
            "mediaType": media,
            "manifests": [
                {
                    "mediaType": child,
                    "digest": d,
                    "size": s,
                    "platform": {
                        "architecture": arch,
                        "os": "linux",
                        **({"variant": variant} if variant else {}),
                    },
                }
                for arch, variant, (d, s) in entries
            ],
        }
        return self.push_manifest(repo, tag, index, media)[0]


def _wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"registry did not listen on {port}")


@contextmanager
def running_registry(
    tmp: Path,
    *,
    htpasswd: Path | None = None,
    tls: tuple[Path, Path] | None = None,
    token: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-secret"},
    }
    if tls:
        config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}  # type: ignore[index]
    if htpasswd:
        config["auth"] = {"htpasswd": {"realm": "ddcompat-test", "path": str(htpasswd)}}
    if token:
        config["auth"] = {"token": token}
    path = tmp / "config.yml"
    path.write_text(json.dumps(config))  # YAML is a superset of JSON
    proc = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_port(port)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
