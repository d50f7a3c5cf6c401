import type { z } from "zod";

/**
 * One line per invalid environment variable, naming the variable and never
 * echoing its value (it may be a secret). Shared by every service's config.
 */
export function describeEnvIssues(error: z.ZodError, env: Readonly<Record<string, string | undefined>>): string {
  const lines = error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "environment");
    const problem = issue.code === "invalid_type" && env[name] === undefined ? "is required" : issue.message;
    return `${name} ${problem}`;
  });
  return `invalid configuration: ${lines.join("; ")}`;
}
