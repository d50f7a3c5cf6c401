export * from "./errors.js";
export * from "./events.js";
export * from "./primitives.js";
export * from "./runnerd.js";
