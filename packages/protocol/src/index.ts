export * from "./errors.js";
export * from "./events.js";
export * from "./output-frames.js";
export * from "./primitives.js";
export * from "./runnerd.js";
