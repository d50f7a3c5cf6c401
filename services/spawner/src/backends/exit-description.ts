import { constants } from "node:os";

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name]));

/** "code 3", or "code 137 (SIGKILL)" for the 128+N convention of a process killed by signal N. */
export function exitDescription(exitCode: number): string {
  const signal = exitCode > 128 ? SIGNAL_NAMES.get(exitCode - 128) : undefined;
  return signal ? `code ${exitCode} (${signal})` : `code ${exitCode}`;
}
