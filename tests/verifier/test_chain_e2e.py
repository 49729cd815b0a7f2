"""The sponsor chain end to end: keyless grant and record, the real log, ``aer verify``.

Real parts: the AER log server on loopback, git repositories, the ``aer``
command, sigstore-python signing and verification. The only stand-in is the
local Fulcio + OIDC provider (attest.localsigstore), which speaks Fulcio's
wire format because no network is available here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from attest.localsigstore import LocalSigstore
from tests.conftest import AER, GIT_ENV, git, make_repo
from tests.logserver_proc import LogProcess, running_log

SPONSOR = "alice@example.com"
SPONSOR_ISSUER = "https://accounts.example.com"
AGENT_ISSUER = "https://token.actions.githubusercontent.com"
AGENT_ID = "https://github.com/example/payments/.github/workflows/agent.yml@refs/heads/main"
OTHER_AGENT_ID = "https://github.com/example/payments/.github/workflows/other.yml@refs/heads/main"
REPO_URI = "https://github.com/example/payments"

AGENT_SCRIPT = """\
import subprocess
import time
src = open("calc.py").read().replace("a - b", "a + b")
open("calc.py", "w").write(src)
subprocess.run(["git", "commit", "-q", "-am", "Fix add()"], check=True)
"""


@dataclass
class World:
    tmp: Path
    log: LogProcess
    ls: LocalSigstore
    fulcio_url: str
    trust_config: Path
    trusted_root: Path

    def aer(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **GIT_ENV, "HOME": str(self.tmp), "XDG_CONFIG_HOME": str(self.tmp)}
        env.pop("AER_IDENTITY_TOKEN", None)
        return subprocess.run(
            [str(AER), *args],
            cwd=cwd or self.tmp,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    def token(self, subject: str, issuer: str, email: str | None = None) -> str:
        return self.ls.issue_token(subject=subject, issuer=issuer, email=email)

    def sponsor_token(self) -> str:
        return self.token(SPONSOR, SPONSOR_ISSUER, email=SPONSOR)

    def sign(self, statement: Path, token: str, out: Path) -> Path:
        r = self.aer(
            "sign", "--keyless", "--identity-token", token,
            "--trust-config", str(self.trust_config), "--out", str(out), str(statement),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert token not in r.stdout + r.stderr  # the token is never printed
        return out

    def verify(self, bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.aer(
            "verify", "--bundle", str(bundle), "--trusted-root", str(self.trusted_root),
            "--sponsor-identity", SPONSOR, "--sponsor-oidc-issuer", SPONSOR_ISSUER, *extra,
        )  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("chain")
    ls = LocalSigstore.create(tmp / "sigstore")
    with running_log(tmp / "log") as log, ls.serve() as fulcio:
        w = World(tmp, log, ls, fulcio.url, tmp / "trust-config.json", tmp / "trusted-root.json")
        common = [
            "trust-root", "--log", log.url,
            "--fulcio-ca", str(ls.directory / "ca-chain.pem"),
            "--ctlog-key", str(ls.directory / "ctlog.pub"),
        ]  # fmt: skip
        r = w.aer(*common, "--fulcio-url", fulcio.url, "--oidc-url", fulcio.url,
                  "--out", str(w.trust_config), "--client-trust-config")  # fmt: skip
        assert r.returncode == 0, r.stderr
        r = w.aer(*common, "--out", str(w.trusted_root))
        assert r.returncode == 0, r.stderr
        yield w


def _grant(w: World, name: str, *extra: str) -> Path:
    out = w.tmp / f"{name}.json"
    r = w.aer(
        "grant", "create", "--sponsor", SPONSOR, "--sponsor-issuer", SPONSOR_ISSUER,
        "--task-title", "Fix add()", "--task-id", "PAY-1",
        "--agent-issuer", AGENT_ISSUER, "--agent-identity", AGENT_ID,
        "--repository", REPO_URI, "--branch", "main", "--out", str(out), *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return w.sign(out, w.sponsor_token(), w.tmp / f"{name}.sigstore.json")


def _record(w: World, name: str, *options: str, origin: str = REPO_URI) -> Path:
    repo = make_repo(w.tmp / f"repo-{name}")
    git(repo, "remote", "add", "origin", origin)
    script = w.tmp / "agent.py"
    script.write_text(AGENT_SCRIPT)
    out = w.tmp / f"{name}.statement.json"
    r = w.aer(
        "record", "--out", str(out), "--task-title", "Fix add()", "--task-id", "PAY-1",
        *options, "--", sys.executable, str(script), cwd=repo,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def grant(world: World) -> Path:
    return _grant(world, "grant")


@pytest.fixture(scope="module")
def delegated(world: World, grant: Path) -> Path:
    st = _record(world, "delegated", "--grant", str(grant))
    return world.sign(
        st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "delegated.sigstore.json"
    )


def _fails(r: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    print(r.stderr)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert text in lines[0], lines[0]


class TestDelegated:
    def test_delegated_chain_verifies(self, world: World, delegated: Path, grant: Path) -> None:
        r = world.verify(delegated, "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["mode"] == "delegated"
        assert out["signer"] == {"identity": AGENT_ID, "issuer": AGENT_ISSUER}
        assert out["sponsor"]["identity"] == {"email": SPONSOR, "issuer": SPONSOR_ISSUER}
        g = json.loads(grant.read_text())["verificationMaterial"]["tlogEntries"][0]
        assert out["grant"]["logIndex"] == int(g["logIndex"])
        for check in ("grant-signature", "grant-logged", "agent-identity", "grant-window",
                      "grant-scope", "sponsor-identity"):  # fmt: skip
            assert check in out["checks"]

    def test_auditors_find_runs_by_grant(self, world: World, delegated: Path) -> None:
        payload = json.loads(delegated.read_text())["dsseEnvelope"]["payload"]
        st = json.loads(base64.b64decode(payload))
        uuid = st["predicate"]["sponsor"]["grant"]["logEntry"]["uuid"]
        page = requests.get(
            world.log.url + "/api/v1/records", params={"subject": "grant:" + uuid}, timeout=10
        ).json()
        assert [r["runId"] for r in page["records"]] == [st["predicate"]["runId"]]

    def test_pinned_log_key(self, world: World, delegated: Path, tmp_path: Path) -> None:
        r = world.verify(delegated, "--log-key", world.log.url, "--json")
        assert r.returncode == 0, r.stderr
        other = tmp_path / "other"
        assert world.aer("keygen", "--out", str(other)).returncode == 0
        _fails(world.verify(delegated, "--log-key", str(other) + ".pub"), 7, "")

    def test_witness_needs_log_key(self, world: World, delegated: Path) -> None:
        _fails(world.verify(delegated, "--witness", "w+1234+AAAA"), 2, "--witness needs --log-key")

    def test_human_output(self, world: World, delegated: Path) -> None:
        r = world.verify(delegated)
        assert r.returncode == 0, r.stderr
        assert "delegated sponsorship" in r.stdout and AGENT_ID in r.stdout

    def test_offline_grant_file(self, world: World, delegated: Path, grant: Path) -> None:
        r = world.verify(delegated, "--grant", str(grant), "--grant-log", "http://127.0.0.1:9")
        assert r.returncode == 0, r.stderr

    def test_grant_expired(self, world: World) -> None:
        old = _grant(world, "expired", "--not-before", "2026-01-01T00:00:00Z", "--valid-for", "1h")
        st = _record(world, "expired", "--grant", str(old))
        b = world.sign(st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "expired.b.json")
        _fails(world.verify(b), 8, "grant expired")

    def test_agent_identity_not_in_grant(self, world: World, grant: Path) -> None:
        st = _record(world, "other-agent", "--grant", str(grant))
        b = world.sign(st, world.token(OTHER_AGENT_ID, AGENT_ISSUER), world.tmp / "other.b.json")
        _fails(world.verify(b), 8, "agent identity not in grant")

    def test_agent_issuer_not_in_grant(self, world: World, grant: Path) -> None:
        st = _record(world, "other-issuer", "--grant", str(grant))
        b = world.sign(
            st, world.token(AGENT_ID, "https://gitlab.example.com"), world.tmp / "oi.json"
        )
        _fails(world.verify(b), 8, "agent identity not in grant")

    def test_repository_outside_scope(self, world: World, grant: Path) -> None:
        st = _record(
            world, "scope", "--grant", str(grant), origin="https://github.com/example/other"
        )
        b = world.sign(st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "scope.b.json")
        _fails(world.verify(b), 8, "repository outside the grant's scope")

    def test_sponsor_field_mismatch(self, world: World, grant: Path) -> None:
        st = _record(world, "mismatch", "--grant", str(grant))
        obj = json.loads(st.read_text())
        obj["predicate"]["sponsor"]["identity"]["email"] = "mallory@example.com"
        st.write_text(json.dumps(obj))
        b = world.sign(st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "mismatch.b.json")
        _fails(world.verify(b), 8, "sponsor field mismatch")

    def test_grant_not_in_log(self, world: World, grant: Path) -> None:
        st = _record(world, "nolog", "--grant", str(grant))
        obj = json.loads(st.read_text())
        obj["predicate"]["sponsor"]["grant"]["logEntry"]["uuid"] = "ab" * 32
        st.write_text(json.dumps(obj))
        b = world.sign(st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "nolog.b.json")
        _fails(world.verify(b), 7, "grant not in the log")

    def test_grant_digest_mismatch(self, world: World, grant: Path) -> None:
        st = _record(world, "digest", "--grant", str(grant))
        obj = json.loads(st.read_text())
        obj["predicate"]["sponsor"]["grant"]["digest"]["sha256"] = "cd" * 32
        st.write_text(json.dumps(obj))
        b = world.sign(st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "digest.b.json")
        _fails(world.verify(b), 8, "payload digest")

    def test_grant_signed_by_someone_else(self, world: World) -> None:
        out = world.tmp / "mallory-grant.json"
        r = world.aer(
            "grant", "create", "--sponsor", "mallory@example.com", "--sponsor-issuer",
            SPONSOR_ISSUER, "--task-title", "Fix add()", "--agent-issuer", AGENT_ISSUER,
            "--agent-identity", AGENT_ID, "--repository", REPO_URI, "--out", str(out),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        token = world.token("mallory@example.com", SPONSOR_ISSUER, email="mallory@example.com")
        g = world.sign(out, token, world.tmp / "mallory-grant.b.json")
        st = _record(world, "mallory", "--grant", str(g))
        b = world.sign(st, world.token(AGENT_ID, AGENT_ISSUER), world.tmp / "mallory.b.json")
        _fails(world.verify(b), 8, "not an allowed sponsor")

    def test_wrong_sponsor_issuer_option(self, world: World, delegated: Path) -> None:
        r = world.aer(
            "verify", "--bundle", str(delegated), "--trusted-root", str(world.trusted_root),
            "--sponsor-identity", SPONSOR, "--sponsor-oidc-issuer", "https://other.example.com",
        )  # fmt: skip
        _fails(r, 8, "not an allowed sponsor")


@pytest.fixture(scope="module")
def direct(world: World) -> Path:
    st = _record(world, "direct", "--sponsor", SPONSOR, "--sponsor-issuer", SPONSOR_ISSUER)
    return world.sign(st, world.sponsor_token(), world.tmp / "direct.sigstore.json")


class TestDirect:
    def test_direct_verifies_with_certificate_options(self, world: World, direct: Path) -> None:
        r = world.aer(
            "verify", "--bundle", str(direct), "--trusted-root", str(world.trusted_root),
            "--certificate-identity", SPONSOR, "--certificate-oidc-issuer", SPONSOR_ISSUER,
            "--json",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["mode"] == "direct"

    def test_direct_verifies_with_regexp(self, world: World, direct: Path) -> None:
        r = world.aer(
            "verify", "--bundle", str(direct), "--trusted-root", str(world.trusted_root),
            "--certificate-identity-regexp", r"^[a-z]+@example\.com$",
            "--certificate-oidc-issuer-regexp", r"^https://accounts\.example\.com$",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr

    def test_direct_sponsor_field_mismatch(self, world: World) -> None:
        st = _record(world, "direct-bob", "--sponsor", "bob@example.com",
                     "--sponsor-issuer", SPONSOR_ISSUER)  # fmt: skip
        b = world.sign(st, world.sponsor_token(), world.tmp / "direct-bob.b.json")
        _fails(world.verify(b), 8, "sponsor field mismatch")

    def test_wrong_identity(self, world: World, direct: Path) -> None:
        r = world.aer(
            "verify", "--bundle", str(direct), "--trusted-root", str(world.trusted_root),
            "--certificate-identity", "bob@example.com", "--certificate-oidc-issuer", SPONSOR_ISSUER,
        )  # fmt: skip
        _fails(r, 8, "not an allowed sponsor")

    def test_unknown_ca(self, world: World, direct: Path) -> None:
        other = LocalSigstore.create(world.tmp / "other-sigstore")
        root = world.tmp / "other-root.json"
        r = world.aer(
            "trust-root", "--log", world.log.url,
            "--fulcio-ca", str(other.directory / "ca-chain.pem"),
            "--ctlog-key", str(world.ls.directory / "ctlog.pub"), "--out", str(root),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        r = world.aer(
            "verify", "--bundle", str(direct), "--trusted-root", str(root),
            "--certificate-identity", SPONSOR, "--certificate-oidc-issuer", SPONSOR_ISSUER,
        )  # fmt: skip
        _fails(r, 8, "the certificate is not trusted")
        assert "allowed sponsor" not in r.stderr  # a CA failure is not an identity mismatch

    def test_missing_sct(self, world: World) -> None:
        st = _record(world, "nosct", "--sponsor", SPONSOR, "--sponsor-issuer", SPONSOR_ISSUER)
        world.ls.embed_sct = False
        try:
            r = world.aer(
                "sign", "--keyless", "--identity-token", world.sponsor_token(),
                "--trust-config", str(world.trust_config), "--out", str(world.tmp / "x"), str(st),
            )  # fmt: skip
        finally:
            world.ls.embed_sct = True
        # sigstore-python's signer itself refuses a certificate without an SCT.
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "SCT" in r.stderr or "timestamp" in r.stderr.lower(), r.stderr

    def test_key_and_identity_is_a_usage_error(self, world: World, direct: Path) -> None:
        r = world.aer(
            "verify", "--bundle", str(direct), "--key", str(direct),
            "--certificate-identity", SPONSOR, "--certificate-oidc-issuer", SPONSOR_ISSUER,
        )  # fmt: skip
        _fails(r, 2, "not both")

    def test_no_trust_option_is_a_usage_error(self, world: World, direct: Path) -> None:
        _fails(world.aer("verify", "--bundle", str(direct)), 2, "say whom to trust")


def test_certificate_without_sct_is_refused(world: World) -> None:
    """A bundle whose certificate has no SCT (a CA outside CT) fails verification.

    sigstore-python's signer refuses such a certificate, so the bundle is put
    together here from the same parts its signer uses (private APIs): the
    stand-in's certificate without SCT, a DSSE signature, a real log entry.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore import dsse
    from sigstore._internal.rekor.client import RekorClient
    from sigstore.models import Bundle

    st = _record(world, "sct", "--sponsor", SPONSOR, "--sponsor-issuer", SPONSOR_ISSUER)
    key = ec.generate_private_key(ec.SECP256R1())
    chain = world.ls.issue_certificate(key.public_key(), world.sponsor_token(), embed_sct=False)
    envelope = dsse._sign(key, dsse.Statement(st.read_bytes()))
    rekor = RekorClient(world.log.url)
    entry = rekor.create_entry(rekor._build_dsse_request(envelope=envelope, certificate=chain[0]))
    bundle = world.tmp / "nosct.sigstore.json"
    bundle.write_text(Bundle._from_parts(chain[0], envelope, entry, []).to_json())
    r = world.aer(
        "verify", "--bundle", str(bundle), "--trusted-root", str(world.trusted_root),
        "--certificate-identity", SPONSOR, "--certificate-oidc-issuer", SPONSOR_ISSUER,
    )  # fmt: skip
    _fails(r, 8, "SCT")


class TestGate:
    """``aer gate commits`` trusts keyless records through the same sponsor chain."""

    POLICY = f"""\
name: proven
version: "1"
rules:
  - name: sponsor-proven
    expression: sponsor.verified == true && sponsor.mode == "delegated"
    message: the sponsor must be proven through a grant
  - name: signer-is-the-agent
    expression: signer.identity == "{AGENT_ID}"
    message: signed by the agent workflow
"""

    def _gate(self, world: World, repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return world.aer(
            "gate", "commits", "--repo", str(repo), "--range", "HEAD~1..HEAD",
            "--log", world.log.url, "--json", *extra,
        )  # fmt: skip

    def _sponsor(self, world: World) -> list[str]:
        return ["--trusted-root", str(world.trusted_root), "--sponsor-identity", SPONSOR,
                "--sponsor-oidc-issuer", SPONSOR_ISSUER]  # fmt: skip

    def test_delegated_record_covers_its_commit(self, world: World, delegated: Path) -> None:
        policy = world.tmp / "proven.yaml"
        policy.write_text(self.POLICY)
        r = self._gate(world, world.tmp / "repo-delegated", *self._sponsor(world),
                       "--policy", str(policy))  # fmt: skip
        assert r.returncode == 0, r.stderr
        (verdict,) = json.loads(r.stdout)["results"]
        assert verdict["outcome"] == "covered"
        assert verdict["policy"]["decision"] == "allow"

    def test_keyless_record_without_sponsor_options_is_untrusted(
        self, world: World, delegated: Path, tmp_path: Path
    ) -> None:
        r = world.aer("keygen", "--out", str(tmp_path / "k"))
        assert r.returncode == 0, r.stderr
        r = self._gate(world, world.tmp / "repo-delegated", "--key", str(tmp_path / "k.pub"))
        assert r.returncode == 4, r.stderr
        assert "not signed by a trusted key" in r.stderr

    def test_agent_outside_grant_fails_the_gate(self, world: World, grant: Path) -> None:
        st = _record(world, "gate-rogue", "--grant", str(grant))
        world.sign(st, world.token(OTHER_AGENT_ID, AGENT_ISSUER), world.tmp / "gate-rogue.b.json")
        r = self._gate(world, world.tmp / "repo-gate-rogue", *self._sponsor(world))
        assert r.returncode == 8, r.stderr
        assert "agent identity not in grant" in r.stderr

    def test_no_trust_is_a_usage_error(self, world: World) -> None:
        r = self._gate(world, world.tmp / "repo-delegated")
        _fails_usage = r.returncode == 2 and "say whose records the gate trusts" in r.stderr
        assert _fails_usage, r.stderr


class TestAdmission:
    """The admission webhook admits an image built from a commit a keyless record covers."""

    def test_webhook_trusts_delegated_records(
        self, world: World, delegated: Path, grant: Path
    ) -> None:
        from tests.verifier.admission.test_webhook_e2e import pod_review, start_webhook

        good = "registry.example.com/payments/svc@sha256:" + "a1" * 32
        rogue = "registry.example.com/payments/rogue@sha256:" + "b2" * 32
        st = _record(world, "adm-rogue", "--grant", str(grant))
        world.sign(st, world.token(OTHER_AGENT_ID, AGENT_ISSUER), world.tmp / "adm-rogue.b.json")
        r = world.aer("keygen", "--out", str(world.tmp / "builder"))
        assert r.returncode == 0, r.stderr
        for image, repo in ((good, "repo-delegated"), (rogue, "repo-adm-rogue")):
            r = world.aer(
                "attest", "provenance", "--image", image, "--repo", str(world.tmp / repo),
                "--builder-id", "https://ci.example.com/build", "--key",
                str(world.tmp / "builder.key"), "--out", str(world.tmp / f"{repo}.prov.json"),
                "--log", world.log.url,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
        env = {"HOME": str(world.tmp), "XDG_CONFIG_HOME": str(world.tmp)}
        hook = start_webhook(
            world.tmp / "webhook", env, "--log", world.log.url,
            "--builder-key", str(world.tmp / "builder.pub"),
            "--trusted-root", str(world.trusted_root),
            "--sponsor-identity", SPONSOR, "--sponsor-oidc-issuer", SPONSOR_ISSUER,
        )  # fmt: skip
        try:
            resp = hook.review(pod_review(good))
            assert resp["allowed"] is True, resp
            resp = hook.review(pod_review(rogue))
            assert resp["allowed"] is False
            assert "agent identity not in grant" in resp["status"]["message"], resp
        finally:
            hook.stop()


def test_witnessed_keyless_record(world: World, tmp_path: Path) -> None:
    """``aer verify --witness`` works for keyless records as for key-signed ones."""
    from log_server.logkey import load_or_create
    from tests.logserver_proc import free_port, start_log, start_witness

    port = free_port()
    origin = f"127.0.0.1:{port}"
    log_vkey = load_or_create(tmp_path / "log", origin, origin).vkey()
    witness = start_witness(tmp_path / "w", "witness.test/w1", log_vkey)
    log = start_log(tmp_path / "log", port, "--witness", f"{witness.url}={witness.vkey}")
    try:
        config, root = tmp_path / "config.json", tmp_path / "root.json"
        common = [
            "trust-root", "--log", log.url,
            "--fulcio-ca", str(world.ls.directory / "ca-chain.pem"),
            "--ctlog-key", str(world.ls.directory / "ctlog.pub"),
        ]  # fmt: skip
        r = world.aer(*common, "--fulcio-url", world.fulcio_url, "--out", str(config),
                      "--client-trust-config")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert world.aer(*common, "--out", str(root)).returncode == 0
        st = _record(world, "witnessed", "--sponsor", SPONSOR, "--sponsor-issuer", SPONSOR_ISSUER)
        bundle = tmp_path / "b.json"
        r = world.aer(
            "sign", "--keyless", "--identity-token", world.sponsor_token(),
            "--trust-config", str(config), "--out", str(bundle), str(st),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        args = [
            "verify", "--bundle", str(bundle), "--trusted-root", str(root),
            "--certificate-identity", SPONSOR, "--certificate-oidc-issuer", SPONSOR_ISSUER,
            "--log-key", log.url, "--witness", witness.vkey, "--json",
        ]  # fmt: skip
        deadline = time.monotonic() + 20
        while True:  # the log asks its witness to cosign in the background
            r = world.aer(*args)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["witnessed"]["cosigners"] == ["witness.test/w1"]
    finally:
        log.stop()
        witness.stop()
