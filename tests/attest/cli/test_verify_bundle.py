"""``aer verify-bundle``: the sigstore-conformance client protocol, end to end.

Every conformance case runs through the installed ``aer`` command; usage
errors, regexp options and ``--json`` run in-process through ``main``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from attest.cli import main
from tests.verifier.test_sigstore_verify import (
    CASES,
    CONFORMANCE,
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    EXPECTED_FAILURE,
    Case,
    case,
)

RunAer = Callable[..., subprocess.CompletedProcess[str]]


def protocol_args(c: Case, artifact: str | None = None) -> list[str]:
    """The arguments the conformance suite passes for a case."""
    args = ["verify-bundle", "--bundle", str(c.bundle)]
    key = c.file("key.pub")
    if key is not None:
        args += ["--key", str(key)]
    else:
        args += ["--certificate-identity", c.identity, "--certificate-oidc-issuer", c.issuer]
    root = c.file("trusted_root.json")
    if root is not None:
        args += ["--trusted-root", str(root)]
    return [*args, artifact or str(c.artifact)]


def assert_one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("aer: error: ")


class TestConformanceProtocol:
    @pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
    def test_case_exit_code(self, run_aer: RunAer, c: Case) -> None:
        proc = run_aer(*protocol_args(c))
        if not c.should_fail:
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.startswith("Verified: ")
            return
        assert proc.returncode not in (0, 1, 2), proc.stderr
        assert_one_line_error(proc.stderr)
        want = EXPECTED_FAILURE.get(c.name)
        if want is not None:
            assert proc.returncode == want.exit_code, proc.stderr

    @pytest.mark.parametrize(
        "name", ["happy-path-v0.3", "happy-path-intoto-in-dsse-v3", "managed-key-happy-path"]
    )
    def test_digest_artifact(self, run_aer: RunAer, name: str) -> None:
        c = case(name)
        proc = run_aer(*protocol_args(c, c.digest()))
        assert proc.returncode == 0, proc.stderr

    def test_wrong_digest_artifact(self, run_aer: RunAer) -> None:
        proc = run_aer(*protocol_args(case("happy-path-v0.3"), "sha256:" + "ab" * 32))
        assert proc.returncode == 4
        assert_one_line_error(proc.stderr)

    def test_usage_error_exits_2(self, run_aer: RunAer) -> None:
        c = case("managed-key-happy-path")
        args = protocol_args(c)
        proc = run_aer(*args[:-1], "--certificate-identity", DEFAULT_IDENTITY, args[-1])
        assert proc.returncode == 2
        assert "--key and --certificate-identity" in proc.stderr
        assert_one_line_error(proc.stderr)

    def test_help(self, run_aer: RunAer) -> None:
        proc = run_aer("verify-bundle", "--help")
        assert proc.returncode == 0
        for option in (
            "--bundle",
            "--certificate-identity-regexp",
            "--certificate-oidc-issuer-regexp",
            "--key",
            "--trusted-root",
            "sha256:<hex>",
            "anchor them",
        ):
            assert option in proc.stdout
        assert "verify-bundle" in run_aer("--help").stdout


HAPPY = case("happy-path-v0.3")


def keyless(*extra: str, artifact: str | None = None) -> list[str]:
    return [
        "verify-bundle",
        "--bundle",
        str(HAPPY.bundle),
        *extra,
        artifact or str(CONFORMANCE / "a.txt"),
    ]


class TestUsage:
    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            ((), "say who signed: --certificate-identity ID --certificate-oidc-issuer URL"),
            (("--certificate-identity", DEFAULT_IDENTITY), "give --certificate-oidc-issuer or"),
            (("--certificate-oidc-issuer", DEFAULT_ISSUER), "give --certificate-identity or"),
            (
                ("--key", "k.pub", "--certificate-oidc-issuer", DEFAULT_ISSUER),
                "--key and --certificate-identity/--certificate-oidc-issuer exclude each other",
            ),
            (
                (
                    "--certificate-identity",
                    DEFAULT_IDENTITY,
                    "--certificate-identity-regexp",
                    ".*",
                    "--certificate-oidc-issuer",
                    DEFAULT_ISSUER,
                ),
                "(not both)",
            ),
            (
                (
                    "--certificate-identity-regexp",
                    "(",
                    "--certificate-oidc-issuer",
                    DEFAULT_ISSUER,
                ),
                "invalid regular expression",
            ),
        ],
    )
    def test_wrong_options(
        self, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
    ) -> None:
        assert main(keyless(*extra)) == 2
        err = capsys.readouterr().err
        assert_one_line_error(err)
        assert message in err

    @pytest.mark.parametrize("artifact", ["sha256:abc", "sha256:" + "g" * 64, "sha256:"])
    def test_malformed_digest(self, capsys: pytest.CaptureFixture[str], artifact: str) -> None:
        args = keyless(
            "--certificate-identity",
            DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            artifact=artifact,
        )
        assert main(args) == 2
        err = capsys.readouterr().err
        assert_one_line_error(err)
        assert "sha256:<64 hex digits>" in err

    @pytest.mark.parametrize(
        "args",
        [
            ["verify-bundle", "--bundle", "b.json", "--key", "k.pub"],  # no ARTIFACT
            ["verify-bundle", "--key", "k.pub", "a.txt"],  # no --bundle
        ],
    )
    def test_argparse_errors(self, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        assert "required" in capsys.readouterr().err

    def test_usage_checked_before_files(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["verify-bundle", "--bundle", "missing.json", "--key", "k.pub"]
        assert main([*args, "--certificate-identity", "x", "a.txt"]) == 2

    def test_missing_files_are_input_errors(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        ident = ["--certificate-identity", DEFAULT_IDENTITY]
        issuer = ["--certificate-oidc-issuer", DEFAULT_ISSUER]
        assert main(keyless(*ident, *issuer, artifact=str(tmp_path / "none"))) == 3
        assert "artifact" in capsys.readouterr().err
        args = keyless(*ident, *issuer, "--trusted-root", str(tmp_path / "root.json"))
        assert main(args) == 3
        assert_one_line_error(capsys.readouterr().err)


class TestKeylessOptions:
    @pytest.mark.parametrize(
        "extra",
        [
            ("--certificate-identity-regexp", "^https://github[.]com/sigstore-conformance/"),
            ("--certificate-identity-regexp", "extremely-dangerous"),  # unanchored search
            ("--certificate-identity", DEFAULT_IDENTITY),
        ],
    )
    @pytest.mark.parametrize(
        "issuer",
        [
            ("--certificate-oidc-issuer", DEFAULT_ISSUER),
            ("--certificate-oidc-issuer-regexp", r"^https://token\.actions\."),
        ],
    )
    def test_regexp_accepts(
        self, capsys: pytest.CaptureFixture[str], extra: tuple[str, str], issuer: tuple[str, str]
    ) -> None:
        assert main(keyless(*extra, *issuer)) == 0
        assert DEFAULT_IDENTITY in capsys.readouterr().out

    @pytest.mark.parametrize(
        "extra",
        [
            ("--certificate-identity-regexp", "^extremely-dangerous"),
            ("--certificate-identity", DEFAULT_IDENTITY, "--certificate-oidc-issuer-regexp", "^x"),
            ("--certificate-identity", DEFAULT_IDENTITY.upper()),
        ],
    )
    def test_regexp_rejects(
        self, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
    ) -> None:
        issuer = (
            ()
            if "--certificate-oidc-issuer-regexp" in extra
            else ("--certificate-oidc-issuer", DEFAULT_ISSUER)
        )
        assert main(keyless(*extra, *issuer)) == 8
        assert_one_line_error(capsys.readouterr().err)

    def test_json_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = keyless(
            "--certificate-identity",
            DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            "--json",
        )
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["verified"] is True
        assert out["signer"] == {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
        assert out["logEntry"]["kind"] == "hashedrekord/0.0.1"

    def test_json_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = keyless(
            "--certificate-identity",
            "someone@example.com",
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            "--json",
        )
        assert main(args) == 8
        captured = capsys.readouterr()
        error = json.loads(captured.out)["error"]
        assert (error["kind"], error["code"]) == ("PolicyError", 8)
        assert_one_line_error(captured.err)
