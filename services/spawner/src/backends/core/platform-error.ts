import { BackendUnavailableError } from "../backend-errors.js";

/** How a platform's client error reads in a message (its own status text, its API's message). */
export type ReasonOf = (error: unknown) => string;

/** `what` failed on the platform: a BackendUnavailableError saying what and why (an existing one passes as is). */
export function unavailable(what: string, error: unknown, reasonOf: ReasonOf): BackendUnavailableError {
  if (error instanceof BackendUnavailableError) return error;
  return new BackendUnavailableError(`${what}: ${reasonOf(error)}`, { cause: error });
}

/** Runs one platform call; any failure is the platform being unavailable for `what`. */
export async function platformCall<T>(what: string, op: () => Promise<T>, reasonOf: ReasonOf): Promise<T> {
  try {
    return await op();
  } catch (error) {
    throw unavailable(`could not ${what}`, error, reasonOf);
  }
}
