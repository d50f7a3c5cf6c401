import { readdirSync, readFileSync } from "node:fs";
import { EXEC_MARKER_VAR } from "@sbx/protocol";

interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
}

export interface ExecTreeQuery {
  /** The exec's main process (also its process group id), while it has not been reaped. */
  leaderPid: number | undefined;
  /** `SBX_EXEC=<marker>` as found in /proc/<pid>/environ. */
  marker: string;
  /** The exec's RLIMIT_LOCKS mark, as found in /proc/<pid>/limits (exec-launcher.ts). */
  mark: number;
}

/**
 * Finds every live process an exec started: its process group, processes
 * that carry its lock-limit mark (inherited by every descendant, whatever it
 * does with its session, group, environment or file descriptors), processes
 * that carry its marker in their environment, and all descendants of any of
 * them. Linux only: reads /proc.
 */
export function findExecProcesses(query: ExecTreeQuery, procRoot = "/proc"): number[] {
  const entries = readProcTable(procRoot);
  const self = process.pid;
  const needle = Buffer.from(`${EXEC_MARKER_VAR}=${query.marker}\0`);
  const members = new Set<number>();
  for (const p of entries) {
    if (p.pid === self || p.pid === 1 || p.state === "Z") continue;
    // A group id is only trustworthy while its leader exists: once reaped, the number may be reused.
    if (query.leaderPid !== undefined && (p.pid === query.leaderPid || p.pgid === query.leaderPid)) {
      members.add(p.pid);
    } else if (hasMark(procRoot, p.pid, query.mark) || hasMarker(procRoot, p.pid, needle)) {
      members.add(p.pid);
    }
  }
  addDescendants(entries, members, self);
  return [...members];
}

/** Sends `signal` to every pid; returns how many deliveries succeeded. */
export function signalAll(pids: Iterable<number>, signal: NodeJS.Signals): number {
  let delivered = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
      delivered++;
    } catch (error) {
      // ESRCH: it exited between the scan and the signal, which is the goal anyway.
      if (!isErrno(error, "ESRCH")) throw error;
    }
  }
  return delivered;
}

function addDescendants(entries: ProcEntry[], members: Set<number>, self: number): void {
  const children = new Map<number, number[]>();
  for (const p of entries) {
    if (p.state === "Z" || p.pid === self) continue;
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const stack = [...members];
  for (let pid = stack.pop(); pid !== undefined; pid = stack.pop()) {
    for (const child of children.get(pid) ?? []) {
      if (!members.has(child)) {
        members.add(child);
        stack.push(child);
      }
    }
  }
}

function readProcTable(procRoot: string): ProcEntry[] {
  const entries: ProcEntry[] = [];
  for (const name of readdirSync(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    const entry = readStat(procRoot, Number(name));
    if (entry) entries.push(entry);
  }
  return entries;
}

function readStat(procRoot: string, pid: number): ProcEntry | undefined {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/stat`, "latin1");
  } catch (error) {
    if (isErrno(error, "ENOENT") || isErrno(error, "ESRCH")) return undefined; // exited while we listed /proc
    throw error;
  }
  // The command name sits in parentheses and may itself contain spaces or ')'.
  const close = text.lastIndexOf(")");
  const fields = text.slice(close + 2).split(" ");
  const [state, ppid, pgid] = fields;
  if (state === undefined || ppid === undefined || pgid === undefined) return undefined;
  return { pid, state, ppid: Number(ppid), pgid: Number(pgid) };
}

function hasMarker(procRoot: string, pid: number, needle: Buffer): boolean {
  let environ: Buffer;
  try {
    environ = readFileSync(`${procRoot}/${pid}/environ`);
  } catch (error) {
    // Exited meanwhile, or another user's process: neither can be ours.
    if (["ENOENT", "ESRCH", "EACCES", "EPERM"].some((code) => isErrno(error, code))) return false;
    throw error;
  }
  const at = environ.indexOf(needle);
  return at === 0 || (at > 0 && environ[at - 1] === 0);
}

/** Whether the process's RLIMIT_LOCKS hard limit ("Max file locks") is the exec's mark. */
function hasMark(procRoot: string, pid: number, mark: number): boolean {
  let limits: string;
  try {
    limits = readFileSync(`${procRoot}/${pid}/limits`, "latin1");
  } catch (error) {
    if (["ENOENT", "ESRCH", "EACCES", "EPERM"].some((code) => isErrno(error, code))) return false;
    throw error;
  }
  const line = /^Max file locks\s+(\S+)\s+(\S+)/m.exec(limits);
  return line?.[2] === String(mark);
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && "code" in error && error.code === code;
}
