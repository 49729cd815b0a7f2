#!/usr/bin/env bash
# AER demo: an agent run becomes a signed, verifiable record (run by `make demo`).
# Everything happens in a temporary directory; nothing is left behind.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HERE/.venv/bin:$PATH"
WORK="$(mktemp -d -t aer-demo.XXXXXX)"
LOG_PID=""
FULCIO_PID=""
stop_pid() { if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
cleanup() { stop_pid "$LOG_PID"; stop_pid "$FULCIO_PID"; rm -rf "$WORK"; }
trap cleanup EXIT
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/share"
PORT="${AER_DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
LOG="http://127.0.0.1:$PORT"
export GIT_AUTHOR_NAME="Dev" GIT_AUTHOR_EMAIL="dev@example.com"
export GIT_COMMITTER_NAME="Dev" GIT_COMMITTER_EMAIL="dev@example.com"

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
quote() { local out; printf -v out '%q ' "$@"; printf '\033[2m$ %s\033[0m\n' "${out% }"; }
show() { quote "$@"; "$@"; }
expect_fail() {  # expect_fail CODE CMD...: run CMD, require exit CODE
  local want=$1; shift
  quote "$@"
  set +e; "$@"; local got=$?; set -e
  if [ "$got" -ne "$want" ]; then echo "demo: expected exit $want, got $got" >&2; exit 1; fi
  printf '\033[32m   (refused as expected: exit %s)\033[0m\n' "$got"
}

step "A repository with a bug: add() subtracts"
mkdir "$WORK/payments" && cd "$WORK/payments"
git init -q -b main
printf 'def add(a, b):\n    return a - b\n' > calc.py
git add calc.py && git commit -q -m "initial"
git log --oneline

step "A signing key for the sponsor (air-gapped, key-based mode)"
show aer keygen --out "$WORK/alice"

step "The agent: edits, commits, and reports its tool calls to \$AER_EVENTS_FILE"
cat > "$WORK/agent.py" <<'PY'
import json, os, subprocess
def emit(**event):
    with open(os.environ["AER_EVENTS_FILE"], "a") as f:
        f.write(json.dumps(event) + "\n")
emit(type="model", provider="anthropic", id="claude-sonnet-4-5", parameters={"temperature": 0})
source = open("calc.py").read()
emit(type="context", uri="file:///payments/calc.py", content=source, retrievedBy="file-read")
emit(type="policy_evaluation", policy={"id": "payments-guardrails", "version": "3",
     "digest": {"sha256": "9f2d7a51c0b1e4f38d6a2c5b7e9f0a1d3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b"}},
     engine={"name": "cel"}, decision="allow", reasons=["calc.py is in scope"],
     phase="before-tool-use")
open("calc.py", "w").write(source.replace("a - b", "a + b"))
emit(type="tool_call", name="apply_patch", callId="call-1", arguments={"path": "calc.py"},
     result="patched", policyDecision={"decision": "allow", "policyId": "payments-guardrails", "evaluation": 0})
subprocess.run(["git", "commit", "-q", "-am", "Fix add() to add"], check=True)
emit(type="usage", inputTokens=1840, outputTokens=96, costUsd=0.007)
print("agent: fixed calc.py and committed")
PY
show aer record --out "$WORK/statement.json" --sponsor alice@example.com \
  --task-title "Fix add() returning the difference" \
  --task-uri https://tracker.example.com/PAY-1234 \
  --task-text "add() in calc.py subtracts; make it add." \
  --agent-name fixbot --agent-version 1.4.0 \
  -- python3 "$WORK/agent.py"
python3 - "$WORK/statement.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); p = s["predicate"]
print(f"   subject   {s['subject'][0]['name']}")
print(f"   sponsor   {p['sponsor']['identity']}   task text stored as digest only: {'content' not in p['task']['text']}")
print(f"   toolCalls {[c['name'] for c in p['toolCalls']]}   policy {[e['decision'] for e in p['policyEvaluations']]}")
PY

step "Start the transparency log (embedded default: SQLite, loopback)"
quote aer log serve --data "$WORK/log-data" --port "$PORT"
aer log serve --data "$WORK/log-data" --port "$PORT" 2> "$WORK/log.err" &
LOG_PID=$!
healthy() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; }
for _ in $(seq 150); do healthy "$LOG/healthz" && break; sleep 0.1; done
healthy "$LOG/healthz" || { cat "$WORK/log.err"; exit 1; }
sed 's/^/   /' "$WORK/log.err"

step "Sign it (DSSE in a Sigstore bundle v0.3) and log it: the bundle gets the log entry"
show aer sign --key "$WORK/alice.key" --out "$WORK/bundle.json" --log "$LOG" "$WORK/statement.json"

step "Verify: signature, schema, commits recomputed from the repository, inclusion proof, checkpoint"
show aer verify --bundle "$WORK/bundle.json" --key "$WORK/alice.pub" --repo . --commit HEAD --log-key "$LOG"

step "Auditors search the log's records: who sponsored what, which agent, which commits"
quote curl -s "$LOG/api/v1/records?sponsor=alice@example.com"
python3 - "$LOG" <<'PY'
import json, sys, urllib.request
page = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v1/records?sponsor=alice@example.com"))
for r in page["records"]:
    commits = [c[:12] for c in r["commits"]]
    print(f"   #{r['logIndex']} sponsor {r['sponsor']} -> agent {r['agent']} {r['agentVersion']}: "
          f"{r['task']!r} commits={commits} models={r['models']} policy={r['policyDecision']}")
PY
echo "   C2SP checkpoint ($LOG/api/v2/checkpoint):"
python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1] + "/api/v2/checkpoint").read().decode())' "$LOG" | sed 's/^/     /'

step "Tamper with the record: claim another sponsor"
python3 - "$WORK/bundle.json" "$WORK/tampered.json" <<'PY'
import base64, json, sys
b = json.load(open(sys.argv[1]))
payload = base64.b64decode(b["dsseEnvelope"]["payload"]).replace(b"alice@example.com", b"mallory@example.com")
b["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
json.dump(b, open(sys.argv[2], "w"))
PY
expect_fail 4 aer verify --bundle "$WORK/tampered.json" --key "$WORK/alice.pub" --log-key "$LOG"

step "Tamper with the log entry: claim it was logged at another time"
python3 - "$WORK/bundle.json" "$WORK/backdated.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
e = b["verificationMaterial"]["tlogEntries"][0]
e["integratedTime"] = str(int(e["integratedTime"]) - 86400)
json.dump(b, open(sys.argv[2], "w"))
PY
expect_fail 7 aer verify --bundle "$WORK/backdated.json" --key "$WORK/alice.pub" --log-key "$LOG"

step "Tamper with the repository: a human rewrites the agent's commit"
git commit -q --amend -m "Fix add() (rewritten)"
expect_fail 6 aer verify --bundle "$WORK/bundle.json" --key "$WORK/alice.pub" --repo .

step "Keyless and delegated: the sponsor grants a CI agent one task; the agent signs its own record"
FPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
FULCIO="http://127.0.0.1:$FPORT"
printf '\033[33m   LOCAL STAND-IN: this machine has no network, so a local Fulcio + OIDC provider\n'
printf '   (aer dev-sigstore) plays Sigstore. Everything else is real: sigstore-python signs\n'
printf '   and verifies, and the entries go to the AER log above. See docs/keyless.md.\033[0m\n'
quote aer dev-sigstore serve --dir "$WORK/dev-sigstore" --port "$FPORT"
aer dev-sigstore serve --dir "$WORK/dev-sigstore" --port "$FPORT" > "$WORK/fulcio.out" 2>&1 &
FULCIO_PID=$!
for _ in $(seq 150); do healthy "$FULCIO/.well-known/openid-configuration" && break; sleep 0.1; done
healthy "$FULCIO/.well-known/openid-configuration" || { cat "$WORK/fulcio.out"; exit 1; }
show aer trust-root --log "$LOG" --fulcio-ca "$WORK/dev-sigstore/ca-chain.pem" \
  --ctlog-key "$WORK/dev-sigstore/ctlog.pub" --fulcio-url "$FULCIO" --oidc-url "$FULCIO" \
  --out "$WORK/trust-config.json" --client-trust-config
show aer trust-root --log "$LOG" --fulcio-ca "$WORK/dev-sigstore/ca-chain.pem" \
  --ctlog-key "$WORK/dev-sigstore/ctlog.pub" --out "$WORK/trusted-root.json"
export AER_TRUST_CONFIG="$WORK/trust-config.json"
IDP=https://accounts.example.com
CI=https://token.actions.githubusercontent.com
AGENT_ID=https://github.com/example/payments/.github/workflows/agent.yml@refs/heads/main
token() { aer dev-sigstore token --dir "$WORK/dev-sigstore" "$@"; }

echo "   Alice (the sponsor) writes a task grant and signs it with her own identity:"
show aer grant create --sponsor alice@example.com --sponsor-issuer "$IDP" \
  --task-title "Fix add() returning the difference" --task-id PAY-1234 \
  --agent-issuer "$CI" --agent-identity "$AGENT_ID" \
  --repository https://github.com/example/payments --branch main \
  --valid-for 8h --budget-tokens 200000 --budget-cost 2 --out "$WORK/grant.json"
AER_IDENTITY_TOKEN="$(token --subject alice@example.com --email alice@example.com --issuer "$IDP")" \
  show aer sign --keyless --out "$WORK/grant.sigstore.json" "$WORK/grant.json"

echo "   The agent's CI job (workload identity $AGENT_ID) runs under the grant:"
mkdir "$WORK/ci" && cd "$WORK/ci"
git init -q -b main && git remote add origin https://github.com/example/payments
printf 'def add(a, b):\n    return a - b\n' > calc.py
git add calc.py && git commit -q -m "initial"
show aer record --grant "$WORK/grant.sigstore.json" --out "$WORK/ci-statement.json" \
  --task-title "Fix add() returning the difference" --task-id PAY-1234 \
  --agent-name fixbot --agent-version 1.4.0 -- python3 "$WORK/agent.py"
AER_IDENTITY_TOKEN="$(token --subject "$AGENT_ID" --issuer "$CI")" \
  show aer sign --keyless --out "$WORK/ci.sigstore.json" "$WORK/ci-statement.json"

echo "   Verify the chain: record signer allowed by the grant, grant signed by an allowed sponsor,"
echo "   logged, in scope and in time (sigstore-python checks certificates, SCTs and log entries):"
show aer verify --bundle "$WORK/ci.sigstore.json" --trusted-root "$WORK/trusted-root.json" \
  --sponsor-identity-regexp '^[a-z]+@example\.com$' --sponsor-oidc-issuer "$IDP" --repo . --commit HEAD

echo "   Another workflow signs a record under Alice's grant: refused."
AER_IDENTITY_TOKEN="$(token --subject "${AGENT_ID/agent.yml/rogue.yml}" --issuer "$CI")" \
  show aer sign --keyless --out "$WORK/rogue.sigstore.json" "$WORK/ci-statement.json"
expect_fail 8 aer verify --bundle "$WORK/rogue.sigstore.json" --trusted-root "$WORK/trusted-root.json" \
  --sponsor-identity-regexp '^[a-z]+@example\.com$' --sponsor-oidc-issuer "$IDP"

step "Stop the log and the stand-in"
stop_pid "$LOG_PID"; LOG_PID=""
stop_pid "$FULCIO_PID"; FULCIO_PID=""
echo "   stopped"

step "Done: the record proved who, for whom, what and how, and when it was logged; tampering was caught."
