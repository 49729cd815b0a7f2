#!/usr/bin/env bash
# AER demo: an agent run becomes a signed, verifiable record (run by `make demo`).
# Everything happens in a temporary directory; nothing is left behind.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HERE/.venv/bin:$PATH"
WORK="$(mktemp -d -t aer-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
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

step "Sign it: DSSE envelope in a Sigstore bundle v0.3"
show aer sign --key "$WORK/alice.key" --out "$WORK/bundle.json" "$WORK/statement.json"

step "Verify offline, recomputing the commit subjects from the repository"
show aer verify --bundle "$WORK/bundle.json" --key "$WORK/alice.pub" --repo . --commit HEAD

step "Tamper with the record: claim another sponsor"
python3 - "$WORK/bundle.json" "$WORK/tampered.json" <<'PY'
import base64, json, sys
b = json.load(open(sys.argv[1]))
payload = base64.b64decode(b["dsseEnvelope"]["payload"]).replace(b"alice@example.com", b"mallory@example.com")
b["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
json.dump(b, open(sys.argv[2], "w"))
PY
expect_fail 4 aer verify --bundle "$WORK/tampered.json" --key "$WORK/alice.pub"

step "Tamper with the repository: a human rewrites the agent's commit"
git commit -q --amend -m "Fix add() (rewritten)"
expect_fail 6 aer verify --bundle "$WORK/bundle.json" --key "$WORK/alice.pub" --repo .

step "Done: the record proved who, for whom, what and how; tampering was caught."
