// Verify a Sigstore bundle with sigstore-js (@sigstore/verify), for AER's interop tests.
//
// usage: node verify.js BUNDLE TRUSTED_ROOT IDENTITY ISSUER [ARTIFACT]
//
// Prints one JSON line: {"ok": true, "identity": ..., "issuer": ...} or
// {"ok": false, "code": ..., "message": ...}. Exit 0 verified, 1 refused,
// 2 usage, 3 the npm packages are missing (run `make test`, which installs
// package-lock.json here into .venv/node; the test sets NODE_PATH to it).
'use strict';

const fs = require('fs');

const args = process.argv.slice(2);
if (args.length < 4 || args.length > 5) {
  console.error('usage: node verify.js BUNDLE TRUSTED_ROOT IDENTITY ISSUER [ARTIFACT]');
  process.exit(2);
}
const [bundlePath, rootPath, identity, issuer, artifactPath] = args;

let bundleLib, verifyLib, specs;
try {
  bundleLib = require('@sigstore/bundle');
  verifyLib = require('@sigstore/verify');
  specs = require('@sigstore/protobuf-specs');
} catch (e) {
  console.error(
    `aer: sigstore-js is not installed (${e.code || e.message}): run \`make test\`, ` +
      'which installs tests/verifier/js/package-lock.json into .venv/node'
  );
  process.exit(3);
}

// The SAN policy is a regular expression; anchor and escape for an exact match.
const exact = (s) => '^' + s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '$';

try {
  const bundle = bundleLib.bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const root = specs.TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath, 'utf8')));
  const verifier = new verifyLib.Verifier(verifyLib.toTrustMaterial(root));
  const artifact = artifactPath ? fs.readFileSync(artifactPath) : undefined;
  const signer = verifier.verify(verifyLib.toSignedEntity(bundle, artifact), {
    subjectAlternativeName: exact(identity),
    extensions: { issuer },
  });
  console.log(
    JSON.stringify({
      ok: true,
      identity: signer.identity.subjectAlternativeName,
      issuer: signer.identity.extensions.issuer,
    })
  );
} catch (e) {
  const cause = e.cause ? `: ${e.cause.message || e.cause}` : '';
  console.log(JSON.stringify({ ok: false, code: e.code || e.name, message: e.message + cause }));
  process.exit(1);
}
