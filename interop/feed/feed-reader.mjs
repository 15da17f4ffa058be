// A Node service reading sessionstore's revocation feed with its own Redis client (ioredis),
// as a gateway that verifies access tokens locally would: the wire format of README.md
// ("Revocation feed for other services"), nothing of sessionstore's code.
//
// Input (stdin, JSON): {"nodes": [{"host", "port"}], "cluster": bool, "namespace": "ss",
//                       "since": "<stream id>" | "0", "idleMs": 300}
// Output (stdout, JSON): the entries after `since`, oldest first:
//   [{"id", "userId", "sessionIds": [...], "reason", "at": <ms>, "fields": [names...]}]
// It follows the stream with XREAD BLOCK and stops after `idleMs` without a new entry.

import Redis from "ioredis";

const REASONS = new Set(["revoke", "device", "user", "logout", "evicted", "reuse"]);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// One entry from its flat field list; null for an entry that is not a revocation.
function decode(id, flat) {
  const fields = new Map();
  for (let n = 0; n + 1 < flat.length; n += 2) fields.set(flat[n], flat[n + 1]);
  const reason = fields.get("reason");
  const user = fields.get("user");
  const sessions = fields.get("sessions");
  const at = fields.get("at");
  if (!REASONS.has(reason) || !user || !sessions || !/^\d+$/.test(at ?? "")) return null;
  return {
    id,
    userId: user,
    sessionIds: sessions.split(" "),
    reason,
    at: Number(at),
    fields: [...fields.keys()],
  };
}

const job = await readStdin();
const options = { password: job.password, lazyConnect: false, maxRetriesPerRequest: 2 };
const client = job.cluster
  ? new Redis.Cluster(job.nodes, { redisOptions: options })
  : new Redis({ host: job.nodes[0].host, port: job.nodes[0].port, ...options });
// The stream's key: one per namespace, its own hash tag (a cluster routes it by that).
const key = `${job.namespace}:{!revocations}`;
const entries = [];
let last = job.since ?? "0";
try {
  for (;;) {
    const reply = await client.xread("COUNT", 100, "BLOCK", job.idleMs ?? 300, "STREAMS", key, last);
    if (reply === null) break; // nothing new for idleMs: caught up
    for (const [, items] of reply) {
      for (const [id, flat] of items) {
        last = id; // resume from here after a restart
        const entry = decode(id, flat);
        if (entry !== null) entries.push(entry);
      }
    }
  }
} finally {
  client.disconnect();
}
process.stdout.write(JSON.stringify(entries));
