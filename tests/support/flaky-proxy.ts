import net from "node:net";
import { EXEC_FRAMES_MEDIA_TYPE } from "@sbx/protocol";

export interface FlakyProxy {
  url: string;
  /** Event-stream connections cut so far. */
  cuts(): number;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `target` that breaks every
 * connection carrying an event stream after a random few KiB of it, as a
 * bad network or an impatient load balancer would. Other responses pass
 * untouched, so only stream re-attachment is under test.
 */
export async function startFlakyProxy(target: URL, cutAfter: { min: number; max: number }): Promise<FlakyProxy> {
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let streaming = false;
    let sent = 0;
    const limit = cutAfter.min + Math.floor(Math.random() * (cutAfter.max - cutAfter.min));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => {
      if (!streaming && (chunk.includes("text/event-stream") || chunk.includes(EXEC_FRAMES_MEDIA_TYPE))) {
        streaming = true;
      }
      if (streaming) {
        sent += chunk.length;
        if (sent > limit) {
          // Let part of this chunk through, then break mid-event.
          client.write(chunk.subarray(0, Math.max(0, chunk.length - (sent - limit))));
          cuts++;
          end();
          return;
        }
      }
      client.write(chunk);
    });
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy is not listening on TCP");
  return {
    url: `http://127.0.0.1:${address.port}`,
    cuts: () => cuts,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
