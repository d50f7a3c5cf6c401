import { spawn } from "node:child_process";
import { BackendUnavailableError } from "../backend-errors.js";

/** Where a session's traffic may go: the gateway's proxy on the host, when there is a gateway. */
export interface GuardTarget {
  /** The sessions' network's gateway address (the host, as sessions reach it). */
  host: string;
  port: number;
}

/**
 * Locks a session container's network namespace down so that the only connection it can open
 * is to the gateway's proxy: iptables rules inside the namespace, applied from outside (the
 * spawner enters the namespace of the container's first process) before anything runs in the
 * session — on every start, since a stopped container's namespace goes with it. The session has
 * no NET_ADMIN and no iptables, so it cannot undo them. Replies to the spawner's connections to
 * runnerd pass; loopback passes except Docker's resolver (no DNS out: names are resolved by the
 * gateway); everything else is refused at once (a reset or an ICMP error, not a timeout).
 */
export class EgressGuard {
  constructor(private readonly enabled: boolean) {}

  async apply(pid: number, target: GuardTarget | undefined): Promise<void> {
    if (!this.enabled) return;
    if (!Number.isInteger(pid) || pid <= 0)
      throw new BackendUnavailableError("the session container has no process to guard");
    const toGateway = target ? [`-A OUTPUT -d ${target.host} -p tcp --dport ${target.port} -j ACCEPT`] : [];
    await restore(pid, "iptables-restore", [
      "*filter",
      ":INPUT ACCEPT [0:0]",
      ":FORWARD DROP [0:0]",
      ":OUTPUT DROP [0:0]",
      "-A OUTPUT -o lo -d 127.0.0.11 -j REJECT",
      "-A OUTPUT -o lo -j ACCEPT",
      "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
      ...toGateway,
      "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset",
      "-A OUTPUT -j REJECT --reject-with icmp-port-unreachable",
      "COMMIT",
    ]);
    await restore(pid, "ip6tables-restore", [
      "*filter",
      ":INPUT ACCEPT [0:0]",
      ":FORWARD DROP [0:0]",
      ":OUTPUT DROP [0:0]",
      "-A OUTPUT -o lo -j ACCEPT",
      "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
      "-A OUTPUT -p tcp -j REJECT --reject-with tcp-reset",
      "-A OUTPUT -j REJECT",
      "COMMIT",
    ]);
  }
}

/** Loads one table's rules into the network namespace of process `pid`; fails closed. */
function restore(pid: number, tool: string, rules: string[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn("nsenter", ["-t", String(pid), "-n", tool], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const fail = (why: string) =>
      reject(
        new BackendUnavailableError(
          `could not lock the session's network down (${tool}: ${why}); the spawner needs root and the host's PIDs, or SPAWNER_DOCKER_EGRESS_GUARD=0 where the host enforces egress itself`,
        ),
      );
    child.on("error", (error) => fail(error.message));
    child.on("close", (code) => (code === 0 ? resolve() : fail(stderr.trim().slice(0, 300) || `exit ${code}`)));
    child.stdin.end(`${rules.join("\n")}\n`);
  });
}
