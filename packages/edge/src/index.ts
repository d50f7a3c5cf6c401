export * from "./client-errors.js";
export * from "./clock.js";
export * from "./config-error.js";
export * from "./error-response.js";
export * from "./expiring-set.js";
export * from "./input.js";
export * from "./listen.js";
export * from "./logger.js";
