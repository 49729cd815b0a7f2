// Verify one log entry in this browser, with WebCrypto, trusting nothing the server renders.
//
// Steps (each shown in #verification; data-state goes pending -> verified | failed):
//   1. the entry: fetched from the log's JSON API (/api/v1/log/entries/<uuid>)
//   2. leaf hash: SHA-256(0x00 || body) equals the entry's UUID (RFC 6962)
//   3. inclusion proof: the audit path leads to the checkpoint's root (RFC 9162 2.1.3.2)
//   4. checkpoint: its text names that size and root
//   5. log key: the Ed25519 key this browser pinned on first use (fingerprint shown)
//   6. checkpoint signature: Ed25519 over the note text, by the pinned key (C2SP signed note)
//   7. DSSE signature (key-signed records): the payload hashes to the logged payloadHash and an
//      ECDSA P-256 signature over PAE(payloadType, payload) verifies with the logged key
//   8. consistency: the checkpoint extends the last one this browser saw (RFC 9162 2.1.4.2)
"use strict";

(function () {
  const panel = document.getElementById("verification");
  if (!panel) return;
  const list = panel.querySelector(".steps");
  const stateText = panel.querySelector(".state");
  const fingerprint = panel.querySelector(".fingerprint");

  class StepFailure extends Error {
    constructor(step, message) {
      super(message);
      this.step = step;
    }
  }

  function show(ok, step, detail) {
    const li = document.createElement("li");
    li.className = ok === true ? "ok" : ok === false ? "fail" : "note";
    li.dataset.step = step;
    li.textContent = (ok === true ? "✓ " : ok === false ? "✗ " : "– ") + step + (detail ? ": " + detail : "");
    list.appendChild(li);
  }

  const enc = new TextEncoder();
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const fromHex = (h) => {
    if (!/^([0-9a-f]{2})*$/.test(h)) throw new Error("not hex");
    return Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
  };
  const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const hashLeaf = (data) => sha256(concat(Uint8Array.of(0), data));
  const hashChildren = (l, r) => sha256(concat(Uint8Array.of(1), l, r));
  const half = (n) => Math.floor(n / 2);
  const odd = (n) => n % 2 === 1;
  // RFC 9162: "right-shift both fn and sn equally until either LSB(fn) is set or fn is 0".
  const shiftToOdd = (fn, sn) => {
    while (!odd(fn) && fn !== 0) {
      fn = half(fn);
      sn = half(sn);
    }
    return [fn, sn];
  };

  async function getJSON(path) {
    const resp = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!resp.ok) throw new Error(path + " answered " + resp.status);
    return resp.json();
  }

  // RFC 9162, 2.1.3.2: the root an inclusion proof leads to.
  async function rootFromInclusion(index, size, leaf, proof) {
    if (!(index < size)) throw new Error("index " + index + " is not in a tree of size " + size);
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) throw new Error("the proof is too long");
      if (odd(fn) || fn === sn) {
        r = await hashChildren(p, r);
        [fn, sn] = shiftToOdd(fn, sn);
      } else {
        r = await hashChildren(r, p);
      }
      fn = half(fn);
      sn = half(sn);
    }
    if (sn !== 0) throw new Error("the proof is too short");
    return r;
  }

  // RFC 9162, 2.1.4.2: does the tree of size2 extend the tree of size1?
  async function verifyConsistency(size1, size2, root1, root2, proof) {
    if (size1 === size2) {
      if (proof.length || !equal(root1, root2)) throw new Error("same size, another root");
      return;
    }
    if (size1 === 0) return;
    if (size1 > size2) throw new Error("the log shrank from " + size1 + " to " + size2);
    // A first tree that is a perfect subtree is its own first node of the path.
    const path = Number.isInteger(Math.log2(size1)) ? [root1, ...proof] : proof.slice();
    if (!path.length) throw new Error("empty consistency proof");
    let fn = size1 - 1;
    let sn = size2 - 1;
    while (odd(fn)) {
      fn = half(fn);
      sn = half(sn);
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) throw new Error("the proof is too long");
      if (odd(fn) || fn === sn) {
        fr = await hashChildren(c, fr);
        sr = await hashChildren(c, sr);
        [fn, sn] = shiftToOdd(fn, sn);
      } else {
        sr = await hashChildren(sr, c);
      }
      fn = half(fn);
      sn = half(sn);
    }
    if (sn !== 0 || !equal(fr, root1) || !equal(sr, root2)) {
      throw new Error("the checkpoints are not consistent (a split view or a rewritten log)");
    }
  }

  // C2SP signed note: the text (through its last newline) and its signature lines.
  function parseNote(note) {
    const cut = note.indexOf("\n\n");
    if (cut < 0) throw new Error("not a signed note");
    const text = note.slice(0, cut + 1);
    const lines = text.split("\n");
    if (lines.length < 4) throw new Error("not a checkpoint");
    const sigs = note
      .slice(cut + 2)
      .split("\n")
      .filter((l) => l.startsWith("— "))
      .map((l) => {
        const [name, b64] = l.slice(2).split(" ");
        return { name, sig: fromB64(b64) };
      });
    return { text, origin: lines[0], size: Number(lines[1]), root: fromB64(lines[2]), sigs };
  }

  function pemToDer(pem) {
    const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    return fromB64(body);
  }

  // ECDSA signatures in DSSE are DER; WebCrypto wants r || s, 32 bytes each.
  function derToRaw(der) {
    let i = 0;
    const take = () => der[i++];
    const len = () => {
      let n = take();
      if (n & 0x80) {
        let k = n & 0x7f;
        n = 0;
        while (k--) n = (n << 8) | take();
      }
      return n;
    };
    if (take() !== 0x30) throw new Error("not a DER signature");
    len();
    const ints = [];
    for (let k = 0; k < 2; k++) {
      if (take() !== 0x02) throw new Error("not a DER signature");
      const n = len();
      let v = der.slice(i, i + n);
      i += n;
      while (v.length > 32 && v[0] === 0) v = v.slice(1);
      if (v.length > 32) throw new Error("not a P-256 signature");
      ints.push(concat(new Uint8Array(32 - v.length), v));
    }
    return concat(ints[0], ints[1]);
  }

  function pae(type, payload) {
    const t = enc.encode(type);
    return concat(enc.encode("DSSEv1 " + t.length + " "), t, enc.encode(" " + payload.length + " "), payload);
  }

  async function pinnedKey(logOrigin) {
    const slot = "aer-log-key:" + location.origin + ":" + logOrigin;
    let stored = localStorage.getItem(slot);
    let first = false;
    if (!stored) {
      const resp = await fetch("/api/v1/log/publicKey", { cache: "no-store" });
      if (!resp.ok) throw new StepFailure("log key", "the log's public key is unavailable (" + resp.status + ")");
      stored = btoa(String.fromCharCode(...pemToDer(await resp.text())));
      localStorage.setItem(slot, stored);
      first = true;
    }
    const der = fromB64(stored);
    const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
    return { key, fingerprint: hex(await sha256(der)), first };
  }

  async function run() {
    const uuid = panel.dataset.uuid;
    let answer;
    try {
      answer = await getJSON("/api/v1/log/entries/" + encodeURIComponent(uuid));
    } catch (e) {
      throw new StepFailure("entry", e.message);
    }
    const entry = answer[uuid];
    if (!entry) throw new StepFailure("entry", "the log answered another entry");
    show(true, "entry", "fetched from this log's API, log index " + entry.logIndex);

    const body = fromB64(entry.body);
    const leaf = await hashLeaf(body);
    if (hex(leaf) !== uuid) throw new StepFailure("leaf hash", "SHA-256(0x00 || body) is not the entry's UUID");
    show(true, "leaf hash", "SHA-256(0x00 || body) = " + uuid.slice(0, 16) + "…");

    const proof = entry.verification.inclusionProof;
    let root;
    try {
      root = await rootFromInclusion(proof.logIndex, proof.treeSize, leaf, proof.hashes.map(fromHex));
    } catch (e) {
      throw new StepFailure("inclusion proof", e.message);
    }
    if (!equal(root, fromHex(proof.rootHash))) {
      throw new StepFailure("inclusion proof", "the audit path leads to another root than the checkpoint's");
    }
    show(true, "inclusion proof", proof.hashes.length + " hashes to the root of a tree of size " + proof.treeSize);

    let cp;
    try {
      cp = parseNote(proof.checkpoint);
    } catch (e) {
      throw new StepFailure("checkpoint", e.message);
    }
    if (cp.size !== proof.treeSize || !equal(cp.root, root)) {
      throw new StepFailure("checkpoint", "the checkpoint names another size or root");
    }
    show(true, "checkpoint", cp.origin + ", size " + cp.size);

    let pinned;
    try {
      pinned = await pinnedKey(cp.origin);
    } catch (e) {
      throw e instanceof StepFailure ? e : new StepFailure("log key", e.message);
    }
    fingerprint.textContent =
      "Log key fingerprint (SHA-256 of the key, the log id): " + pinned.fingerprint +
      (pinned.first ? " — pinned now, on first use: compare it with the operator's" : " — pinned earlier in this browser");
    show(true, "log key", (pinned.first ? "pinned on first use " : "pinned ") + pinned.fingerprint.slice(0, 16) + "…");

    let signed = false;
    for (const s of cp.sigs) {
      if (s.name !== cp.origin || s.sig.length !== 68) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, pinned.key, s.sig.slice(4), enc.encode(cp.text))) {
        signed = true;
      }
    }
    if (!signed) throw new StepFailure("checkpoint signature", "no signature by the pinned log key");
    show(true, "checkpoint signature", "Ed25519, by the pinned log key");

    const logged = JSON.parse(new TextDecoder().decode(body));
    if (logged.kind === "dsse") await checkDsse(uuid, logged);
    else show(null, "DSSE signature", "a " + logged.kind + " entry: no DSSE envelope to check");

    await checkConsistency(cp.size, root);
  }

  async function checkDsse(uuid, logged) {
    let record;
    try {
      record = await getJSON("/api/v1/records/" + encodeURIComponent(uuid));
    } catch (e) {
      throw new StepFailure("DSSE signature", e.message);
    }
    const env = record.envelope;
    if (!env || typeof env.payload !== "string") throw new StepFailure("DSSE signature", "the log serves no envelope");
    const payload = fromB64(env.payload);
    if (hex(await sha256(payload)) !== logged.spec.payloadHash.value) {
      throw new StepFailure("DSSE signature", "the served payload is not the one the log entry commits to");
    }
    const keys = logged.spec.signatures.map((s) => atob(s.verifier));
    if (!keys.some((pem) => pem.includes("PUBLIC KEY"))) {
      show(null, "DSSE signature", "keyless: the payload matches the entry; the certificate chain is checked by 'aer verify', not by this browser");
      return;
    }
    const message = pae(env.payloadType, payload);
    for (const pem of keys) {
      if (!pem.includes("PUBLIC KEY")) continue;
      const key = await crypto.subtle.importKey("spki", pemToDer(pem), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
      for (const s of env.signatures || []) {
        let raw;
        try {
          raw = derToRaw(fromB64(s.sig));
        } catch (e) {
          continue;
        }
        if (await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, raw, message)) {
          show(true, "DSSE signature", "ECDSA P-256 over PAE(payloadType, payload), by the logged key");
          return;
        }
      }
    }
    throw new StepFailure("DSSE signature", "no envelope signature verifies with the logged key");
  }

  async function checkConsistency(size, root) {
    const slot = "aer-last-checkpoint:" + location.origin;
    const prev = JSON.parse(localStorage.getItem(slot) || "null");
    if (prev && prev.size !== size) {
      const [small, big] = prev.size < size ? [prev, { size, root: hex(root) }] : [{ size, root: hex(root) }, prev];
      try {
        const p = await getJSON("/api/v1/log/proof?firstSize=" + small.size + "&lastSize=" + big.size);
        await verifyConsistency(small.size, big.size, fromHex(small.root), fromHex(big.root), (p.hashes || []).map(fromHex));
      } catch (e) {
        throw new StepFailure("consistency", e.message);
      }
      show(true, "consistency", "extends the checkpoint of size " + small.size + " this browser saw before");
    } else if (prev && prev.root !== hex(root)) {
      throw new StepFailure("consistency", "another root for the size this browser saw before");
    } else {
      show(null, "consistency", prev ? "same checkpoint as last time" : "first checkpoint this browser sees from this log");
    }
    if (!prev || size >= prev.size) localStorage.setItem(slot, JSON.stringify({ size, root: hex(root) }));
  }

  run().then(
    () => {
      panel.dataset.state = "verified";
      stateText.textContent = "Verified by this browser: every step below holds.";
    },
    (e) => {
      const step = e instanceof StepFailure ? e.step : "verification";
      show(false, step, e.message);
      panel.dataset.state = "failed";
      stateText.textContent = "FAILED at step \u201c" + step + "\u201d: " + e.message;
    },
  );
})();
