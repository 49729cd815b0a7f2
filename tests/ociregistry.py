"""A real OCI registry for tests: Debian's ``docker-registry`` (CNCF distribution) on loopback.

Each registry gets a temporary storage folder and a free port on 127.0.0.1,
plain HTTP, no authentication unless ``htpasswd`` is given. Distribution 2.8
has no OCI referrers API, so attachments go through the referrers tag schema,
as they do on many registries in the field.

Without the binary the tests that need it are skipped on a developer's
machine, but fail in CI (``.ci/run`` installs ``docker-registry`` and sets
``AER_REQUIRE_REGISTRY=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.logserver_proc import free_port

REQUIRED = os.environ.get("AER_REQUIRE_REGISTRY") == "1"
BINARY = "docker-registry"

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}"""


@dataclass
class Registry:
    host: str
    """``127.0.0.1:PORT``."""
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def registry_binary() -> str:
    path = shutil.which(BINARY) or (
        f"/usr/bin/{BINARY}" if Path(f"/usr/bin/{BINARY}").exists() else None
    )
    if path is None:
        message = "Debian's docker-registry is not installed"
        if REQUIRED:
            pytest.fail(f"a registry is required in CI but {message}")
        pytest.skip(f"{message}; apt-get install docker-registry to run the OCI tests")
    return path


@contextmanager
def running_registry(root: Path, *, htpasswd: Path | None = None) -> Iterator[Registry]:
    """Start a registry storing under ``root``; stop it on exit."""
    binary = registry_binary()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = f"auth:\n  htpasswd:\n    realm: aer-test\n    path: {htpasswd}\n" if htpasswd else ""
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "storage", port=port, auth=auth))
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    reg = Registry(f"127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{reg.url}/v2/", timeout=1).status_code in (200, 401):
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"registry did not start: {(root / 'registry.log').read_text()}")
            time.sleep(0.05)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def push_blob(url: str, repo: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{url}/v2/{repo}/blobs/uploads/", auth=auth, timeout=10)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    if location.startswith("/"):
        location = url + location
    sep = "&" if "?" in location else "?"
    r = requests.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return digest


def push_image(
    url: str, repo: str, content: bytes = b"hello", auth: tuple[str, str] | None = None
) -> str:
    """Push a tiny single-layer OCI image; return its manifest digest ``sha256:...``."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = content
    config_digest = push_blob(url, repo, config, auth)
    layer_digest = push_blob(url, repo, layer, auth)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    r = requests.put(
        f"{url}/v2/{repo}/manifests/{digest}",
        data=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        auth=auth,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return digest
