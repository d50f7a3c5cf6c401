export type {
  CreateSessionRequest,
  ExecEvent,
  ExecInfo,
  ExecRequest,
  FileInfo,
  PatchSessionRequest,
  Session,
  Signal,
} from "@sbx/protocol";
export { SandboxClient } from "./client.js";
export type { TransferProgress } from "./directory-archive.js";
export * from "./errors.js";
export { ExecHandle, type ExecOptions, type ExecWaitResult } from "./exec-handle.js";
export { SessionHandle, type UploadSource } from "./session.js";
export type { ClientOptions } from "./transport.js";
