import { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { jsonBody, query } from "@sbx/edge";
import {
  FetchRequestSchema,
  FileDeleteQuerySchema,
  FileListQuerySchema,
  FileWriteQuerySchema,
  MkdirRequestSchema,
  MoveRequestSchema,
  PathQuerySchema,
} from "@sbx/protocol";
import { type Context, Hono } from "hono";
import type { ArchiveService } from "../files/archive.js";
import type { FetchService } from "../files/fetch.js";
import type { FileService } from "../files/file-service.js";

export interface FileRoutesDeps {
  files: FileService;
  archives: ArchiveService;
  fetcher: FetchService;
}

/** Permission bits only: setuid, setgid and sticky bits are dropped, as archive extraction does. */
const octal = (mode: string | undefined) => (mode === undefined ? undefined : Number.parseInt(mode, 8) & 0o777);

/**
 * The request body as bytes, streamed (never buffered whole): Node's own request stream when the
 * server is Node's (its chunks come straight from the socket), the web body otherwise (tests).
 */
function bodyOf(c: Context): AsyncIterable<Uint8Array> {
  const env: unknown = c.env;
  if (typeof env === "object" && env !== null && "incoming" in env && env.incoming instanceof IncomingMessage) {
    return env.incoming;
  }
  return c.req.raw.body ?? Readable.from([]);
}

function declaredLength(c: Context): number | undefined {
  const header = c.req.header("content-length");
  return header === undefined || !/^\d+$/.test(header) ? undefined : Number(header);
}

export function fileRoutes(deps: FileRoutesDeps): Hono {
  const app = new Hono();
  const { files, archives, fetcher } = deps;

  app.get("/content", async (c) => {
    const { path } = query(c, PathQuerySchema);
    const file = await files.openRead(path);
    return new Response(Readable.toWeb(file.stream), {
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Length": String(file.size),
        "Last-Modified": new Date(file.mtimeMs).toUTCString(),
      },
    });
  });

  app.put("/content", async (c) => {
    const q = query(c, FileWriteQuerySchema);
    const result = await files.write(q.path, bodyOf(c), { mode: octal(q.mode), declaredLength: declaredLength(c) });
    return c.json(result, 200);
  });

  app.get("/stat", async (c) => c.json(await files.stat(query(c, PathQuerySchema).path)));

  app.get("/list", async (c) => {
    const q = query(c, FileListQuerySchema);
    return c.json(await files.list(q.path, q.depth));
  });

  app.delete("/", async (c) => {
    const q = query(c, FileDeleteQuerySchema);
    return c.json(await files.remove(q.path, q.recursive));
  });

  app.post("/mkdir", async (c) => {
    const request = await jsonBody(c, MkdirRequestSchema, "mkdir request");
    const result = await files.mkdir(request.path);
    return c.json(result, result.created ? 201 : 200);
  });

  app.post("/move", async (c) => {
    const request = await jsonBody(c, MoveRequestSchema, "move request");
    return c.json(await files.move(request.from, request.to, request.overwrite));
  });

  app.get("/archive", async (c) => {
    const { path } = query(c, PathQuerySchema);
    return new Response(await archives.pack(path), { headers: { "Content-Type": "application/x-tar" } });
  });

  app.put("/archive", async (c) => {
    const { path } = query(c, PathQuerySchema);
    return c.json(await archives.extract(path, bodyOf(c)));
  });

  app.post("/fetch", async (c) => {
    const request = await jsonBody(c, FetchRequestSchema, "fetch request");
    return c.json(await fetcher.fetch({ ...request, mode: octal(request.mode) }));
  });

  return app;
}
