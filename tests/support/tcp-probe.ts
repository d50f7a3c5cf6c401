/**
 * How one TCP connection attempt ended. Only the connection counts: an isolation test that used
 * curl read a TLS or HTTP failure after the connection had opened (curl's exit 60, 52, 56) as
 * "unreachable", and so passed with the network wide open.
 */
export type TcpReach = "connected" | "refused" | "unreachable" | "timed out";

/** The ends that show the path is closed: a reset, an ICMP unreachable, or packets dropped. */
export const BLOCKED: readonly TcpReach[] = ["refused", "unreachable", "timed out"];

// Prints exactly one TcpReach word, or "error <code>" for anything else (which is no answer).
const PROBE = `
const [host, port, ms] = process.argv.slice(1);
const socket = require("node:net").connect({ host, port: Number(port) });
const end = (what) => { console.log(what); socket.destroy(); process.exit(0); };
setTimeout(() => end("timed out"), Number(ms));
socket.on("connect", () => end("connected"));
socket.on("error", (e) =>
  end(e.code === "ECONNREFUSED" ? "refused" : ["EHOSTUNREACH", "ENETUNREACH"].includes(e.code) ? "unreachable" : "error " + e.code),
);
`;

/** A command that tries one TCP connection to host:port and prints how it ended; it needs only node. */
export function tcpProbeArgv(host: string, port: number, timeoutMs = 3000): string[] {
  return ["node", "-e", PROBE, host, String(port), String(timeoutMs)];
}

/** Reads the probe's output; anything but one of its words is an error, never a "blocked". */
export function parseTcpReach(stdout: string): TcpReach {
  const word = stdout.trim();
  if (word === "connected" || word === "refused" || word === "unreachable" || word === "timed out") return word;
  throw new Error(`the TCP probe gave no answer: ${JSON.stringify(stdout)}`);
}
