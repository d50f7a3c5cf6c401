// The obvious alternatives the benchmarks measure against, done once: `docker exec` as dockerode
// does it, and following a bare Pod until it runs with an IP.
import { PassThrough } from "node:stream";
import { type KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";
import type Docker from "dockerode";
import { SESSIONS_NAMESPACE } from "../support/kubernetes.js";

/**
 * `docker exec` as dockerode does it: create the exec, start it attached, read the demuxed stream,
 * inspect; fails unless it exits 0. `user` is `docker exec --user`.
 */
export async function dockerExec(
  container: Docker.Container,
  cmd: string[],
  onStdout?: (bytes: number) => void,
  user?: string,
) {
  const exec = await container.exec({
    Cmd: cmd,
    AttachStdout: true,
    AttachStderr: true,
    ...(user === undefined ? {} : { User: user }),
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on("data", (chunk: Buffer) => onStdout?.(chunk.length));
  stderr.resume();
  container.modem.demuxStream(stream, stdout, stderr);
  await new Promise<void>((resolve, reject) => {
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  const info = await exec.inspect();
  if (info.ExitCode !== 0) throw new Error(`docker exec ${cmd.join(" ")} exited ${info.ExitCode}`);
}

/** Follows a Pod in the sessions namespace with a watch until it runs with an IP. */
export function runningIp(config: KubeConfig, name: string, resourceVersion: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    let controller: AbortController | undefined;
    void new Watch(config)
      .watch(
        `/api/v1/namespaces/${SESSIONS_NAMESPACE}/pods`,
        { fieldSelector: `metadata.name=${name}`, ...(resourceVersion ? { resourceVersion } : {}) },
        (_type: string, pod: V1Pod) => {
          const running = pod.status?.containerStatuses?.[0]?.state?.running;
          if (pod.status?.phase === "Running" && pod.status.podIP && running) {
            controller?.abort();
            resolve(pod.status.podIP);
          }
        },
        (error: unknown) => {
          if (error) reject(error);
        },
      )
      .then((c) => {
        controller = c;
      }, reject);
  });
}
