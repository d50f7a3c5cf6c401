import type { CreateSessionRequest, Session } from "@sbx/protocol";
import { type Command, listOption, pairs, requirePositional, stringOption } from "../command.js";
import { formatDuration, parseDuration, UsageError } from "../duration.js";
import { keyValues, table } from "../output.js";

function print(context: { json: boolean }, human: string, data: unknown): void {
  process.stdout.write(`${context.json ? JSON.stringify(data, null, 2) : human}\n`);
}

function describeSession(session: Session): string {
  const now = Date.now();
  return keyValues([
    ["id", session.id],
    ["org", session.org],
    ["owner", session.owner ?? "-"],
    ["state", session.state],
    ...(session.reason ? [["reason", `${session.reason.code}: ${session.reason.message}`] as [string, string]] : []),
    ["image", session.image],
    ["created", `${new Date(session.createdAt).toISOString()} (${formatDuration(now - session.createdAt)} ago)`],
    ["expires", `${new Date(session.expiresAt).toISOString()} (in ${formatDuration(session.expiresAt - now)})`],
    ["idle timeout", formatDuration(session.idleTimeoutMs)],
    ["last activity", session.lastActivityAt === null ? "-" : `${formatDuration(now - session.lastActivityAt)} ago`],
    ["resources", `${session.resources.cpus} cpu, ${session.resources.memoryMb} MB, ${session.resources.pids} pids`],
    ["labels", labelText(session.labels) || "-"],
  ]);
}

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

export const create: Command = {
  name: "create",
  summary: "Create a session (a long-lived container with a workspace) and print it.",
  usage:
    "sbx create [--id ID] [--org ORG] [--owner WHO] [--label K=V]... [--ttl 2h] [--idle 30m] [--image IMAGE] [--env K=V]...",
  options: [
    "--id ID          choose the id (a DNS label); repeating a create with the same id and spec is harmless",
    '--org ORG        organisation the session counts against (default: $SBX_ORG, else "default")',
    "--owner WHO      who it is for",
    "--label K=V      a label to find it by later (repeatable)",
    "--ttl DURATION   lifetime, e.g. 90m, 2h, 1d",
    "--idle DURATION  end it after this long without API activity or running commands",
    "--image IMAGE    an image the spawner allows",
    "--profile NAME   a profile the spawner knows",
    "--env K=V        session environment for every command (repeatable; values are never shown again)",
    "--cpus N, --memory MB, --pids N   resources within the spawner's maxima",
  ],
  examples: ["sbx create --org acme --label task=issue-42 --ttl 2h", "SBX_ORG=acme sbx create --id demo --json"],
  spec: {
    id: { type: "string" },
    org: { type: "string" },
    owner: { type: "string" },
    label: { type: "string", multiple: true },
    ttl: { type: "string" },
    idle: { type: "string" },
    image: { type: "string" },
    profile: { type: "string" },
    env: { type: "string", multiple: true },
    cpus: { type: "string" },
    memory: { type: "string" },
    pids: { type: "string" },
  },
  async run(context, values) {
    const number = (name: string) => {
      const text = stringOption(values, name);
      if (text === undefined) return undefined;
      const n = Number(text);
      if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number`);
      return n;
    };
    const labels = pairs(listOption(values, "label"), "--label");
    const env = pairs(listOption(values, "env"), "--env");
    const ttl = stringOption(values, "ttl");
    const idle = stringOption(values, "idle");
    const cpus = number("cpus");
    const memoryMb = number("memory");
    const pids = number("pids");
    const id = stringOption(values, "id");
    const owner = stringOption(values, "owner");
    const image = stringOption(values, "image");
    const profile = stringOption(values, "profile");
    const resources = {
      ...(cpus === undefined ? {} : { cpus }),
      ...(memoryMb === undefined ? {} : { memoryMb }),
      ...(pids === undefined ? {} : { pids }),
    };
    const request: CreateSessionRequest = {
      org: stringOption(values, "org") ?? process.env.SBX_ORG ?? "default",
      ...(id === undefined ? {} : { id }),
      ...(owner === undefined ? {} : { owner }),
      ...(image === undefined ? {} : { image }),
      ...(profile === undefined ? {} : { profile }),
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      ...(Object.keys(env).length > 0 ? { env } : {}),
      ...(ttl === undefined ? {} : { ttlMs: parseDuration(ttl) }),
      ...(idle === undefined ? {} : { idleTimeoutMs: parseDuration(idle) }),
      ...(Object.keys(resources).length > 0 ? { resources } : {}),
    };
    const session = await context.client.createSession(request);
    print(context, context.json ? "" : session.id, session);
    return 0;
  },
};

export const list: Command = {
  name: "ls",
  summary: "List sessions.",
  usage: "sbx ls [--org ORG] [--owner WHO] [--label K=V]...",
  examples: ["sbx ls", "sbx ls --org acme --label task=issue-42", "sbx ls --json | jq -r '.[].id'"],
  spec: { org: { type: "string" }, owner: { type: "string" }, label: { type: "string", multiple: true } },
  async run(context, values) {
    const org = stringOption(values, "org");
    const owner = stringOption(values, "owner");
    const sessions = await context.client.listSessions({
      ...(org === undefined ? {} : { org }),
      ...(owner === undefined ? {} : { owner }),
      labels: pairs(listOption(values, "label"), "--label"),
    });
    const now = Date.now();
    const rows = sessions.map((s) => [
      s.id,
      s.org,
      s.owner ?? "-",
      s.reason ? `${s.state} (${s.reason.code})` : s.state,
      formatDuration(now - s.createdAt),
      formatDuration(s.expiresAt - now),
      labelText(s.labels) || "-",
    ]);
    print(context, table(["ID", "ORG", "OWNER", "STATE", "AGE", "EXPIRES IN", "LABELS"], rows), sessions);
    return 0;
  },
};

export const get: Command = {
  name: "get",
  summary: "Show one session.",
  usage: "sbx get ID",
  examples: ["sbx get demo", "sbx get demo --json"],
  spec: {},
  async run(context, _values, positionals) {
    const session = await context.client.getSession(requirePositional(positionals, 0, "session ID"));
    print(context, describeSession(session), session);
    return 0;
  },
};

export const stop: Command = {
  name: "stop",
  summary: "Stop sessions, keeping workspace, env and exec records (they wake on the next call).",
  usage: "sbx stop ID...",
  examples: ["sbx stop demo", "sbx stop demo && sbx exec demo -- ls   # the exec resumes it"],
  spec: {},
  async run(context, _values, positionals) {
    return eachSession(context, positionals, (id) => context.client.stopSession(id));
  },
};

export const resume: Command = {
  name: "resume",
  summary: "Start stopped sessions again.",
  usage: "sbx resume ID...",
  examples: ["sbx resume demo"],
  spec: {},
  async run(context, _values, positionals) {
    return eachSession(context, positionals, (id) => context.client.resumeSession(id));
  },
};

/** Runs `op` on every session given; prints each as it goes (or all as JSON), failures to stderr. */
async function eachSession(
  context: { json: boolean },
  ids: string[],
  op: (id: string) => Promise<Session>,
): Promise<number> {
  if (ids.length === 0) throw new UsageError("missing session ID");
  const done: Session[] = [];
  let failed = 0;
  for (const id of ids) {
    try {
      const session = await op(id);
      done.push(session);
      if (!context.json) process.stdout.write(`${id}  ${session.state}\n`);
    } catch (error) {
      failed++;
      process.stderr.write(`sbx: ${id}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  if (context.json) process.stdout.write(`${JSON.stringify(done, null, 2)}\n`);
  return failed === 0 ? 0 : 1;
}

export const remove: Command = {
  name: "rm",
  summary: "Delete sessions, with every process and the workspace.",
  usage: "sbx rm ID...",
  examples: ["sbx rm demo", "sbx rm $(sbx ls --label task=old --json | jq -r '.[].id')"],
  spec: {},
  async run(context, _values, positionals) {
    if (positionals.length === 0) throw new UsageError("missing session ID");
    let failed = 0;
    for (const id of positionals) {
      try {
        await context.client.deleteSession(id);
        if (!context.json) process.stdout.write(`${id}\n`);
      } catch (error) {
        failed++;
        process.stderr.write(`sbx: ${id}: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
    if (context.json) process.stdout.write(`${JSON.stringify({ deleted: positionals.length - failed, failed })}\n`);
    return failed === 0 ? 0 : 1;
  },
};

export const extend: Command = {
  name: "extend",
  summary: "Change a session's lifetime (from now) and/or idle timeout.",
  usage: "sbx extend ID [--ttl DURATION] [--idle DURATION]",
  examples: ["sbx extend demo --ttl 4h", "sbx extend demo --idle 2h"],
  spec: { ttl: { type: "string" }, idle: { type: "string" } },
  async run(context, values, positionals) {
    const id = requirePositional(positionals, 0, "session ID");
    const ttl = stringOption(values, "ttl");
    const idle = stringOption(values, "idle");
    if (ttl === undefined && idle === undefined) throw new UsageError("give --ttl and/or --idle");
    const session = await context.client.updateSession(id, {
      ...(ttl === undefined ? {} : { ttlMs: parseDuration(ttl) }),
      ...(idle === undefined ? {} : { idleTimeoutMs: parseDuration(idle) }),
    });
    print(context, `${session.id} expires ${new Date(session.expiresAt).toISOString()}`, session);
    return 0;
  },
};

export const env: Command = {
  name: "env",
  summary: "Show, set or unset a session's environment (values are never shown).",
  usage: "sbx env ID [set K=V... | unset K...]",
  examples: ["sbx env demo", "sbx env demo set API_KEY=$API_KEY REGION=eu", "sbx env demo unset API_KEY"],
  spec: {},
  async run(context, _values, positionals) {
    const session = context.client.session(requirePositional(positionals, 0, "session ID"));
    const [, action, ...items] = positionals;
    let names: string[];
    if (action === undefined) {
      names = await session.envNames();
    } else if (action === "set" || action === "unset") {
      if (items.length === 0) throw new UsageError(`${action} needs at least one ${action === "set" ? "K=V" : "name"}`);
      const result = await session.patchEnv(action === "set" ? { set: pairs(items, "set") } : { unset: items });
      if (result.denied.length > 0) process.stderr.write(`sbx: refused (reserved): ${result.denied.join(", ")}\n`);
      names = result.names;
      if (result.denied.length > 0 && !context.json) {
        process.stdout.write(`${names.join("\n")}\n`);
        return 1;
      }
    } else {
      throw new UsageError(`unknown env action ${JSON.stringify(action)} (set or unset)`);
    }
    print(context, names.join("\n"), { names });
    return 0;
  },
};
