// Sign and verify JWTs with Node's `jose`, for sessionstore's interop tests.
//
// Reads a JSON array of jobs on stdin and writes a JSON array of results (same order):
//   {"op": "sign", "jwk": {...}, "header": {...}, "payload": {...}}
//       -> {"token": "..."}
//   {"op": "verify", "jwk": {...}, "token": "...", "alg": "...", "issuer": "...",
//    "audience": "...", "typ": "at+jwt"}
//       -> {"ok": true, "header": {...}, "payload": {...}} or {"ok": false, "code": "..."}
//   {"op": "verify_remote", "url": "http://...", "token": "...", "alg": ..., ...}
//       -> the same, verified with the JWK Set fetched from `url` (createRemoteJWKSet)
// Keys are JWKs as sessionstore's Keyring exports them (`kid` and `alg` on each).
import { createRemoteJWKSet, importJWK, jwtVerify, SignJWT } from "jose";

async function sign(job) {
  const key = await importJWK(job.jwk, job.header.alg);
  const token = await new SignJWT(job.payload).setProtectedHeader(job.header).sign(key);
  return { token };
}

async function verify(job) {
  const key = job.op === "verify_remote"
    ? createRemoteJWKSet(new URL(job.url))
    : await importJWK(job.jwk, job.alg);
  try {
    const { payload, protectedHeader } = await jwtVerify(job.token, key, {
      algorithms: [job.alg],
      issuer: job.issuer,
      audience: job.audience,
      typ: job.typ,
      requiredClaims: ["sub", "sid", "jti", "iat", "exp"],
    });
    return { ok: true, header: protectedHeader, payload };
  } catch (err) {
    return { ok: false, code: err.code ?? err.name, message: String(err.message) };
  }
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const jobs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const results = [];
  for (const job of jobs) {
    if (job.op === "sign") results.push(await sign(job));
    else if (job.op === "verify" || job.op === "verify_remote") results.push(await verify(job));
    else throw new Error(`unknown op ${job.op}`);
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  process.stderr.write(`jose-tool: ${err.stack ?? err}\n`);
  process.exit(1);
});
