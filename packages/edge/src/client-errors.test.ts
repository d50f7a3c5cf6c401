import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { ErrorEnvelopeSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerClientErrors } from "./client-errors.js";
import { createLogger } from "./logger.js";

/** Sends raw bytes and returns everything the server answered before it closed. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString();
    });
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
    socket.write(request);
  });
}

function envelopeOf(answer: string) {
  return ErrorEnvelopeSchema.parse(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)));
}

describe("requests refused before any route sees them", () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createServer((_req, res) => res.end("ok"));
    answerClientErrors(server, createLogger("test", "silent"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    port = typeof address === "object" && address ? address.port : 0;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("answers headers that are too large with 431 and the error envelope", async () => {
    const answer = await raw(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(answer).toMatch(/content-type: application\/json/i);
    expect(envelopeOf(answer).error.code).toBe("HEADERS_TOO_LARGE");
  });

  it("answers a malformed request with 400 and the error envelope", async () => {
    const answer = await raw(port, "THIS IS NOT HTTP\r\n\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(envelopeOf(answer).error.code).toBe("MALFORMED_REQUEST");
  });

  it("still serves well-formed requests", async () => {
    const answer = await raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
  });
});
