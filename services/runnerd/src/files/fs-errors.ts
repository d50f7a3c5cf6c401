import { ApiError } from "@sbx/protocol";

const BY_ERRNO: Record<string, (rel: string) => ApiError> = {
  ENOENT: (rel) => new ApiError("FILE_NOT_FOUND", `${rel}: no such file or directory`),
  ENOTDIR: (rel) => new ApiError("NOT_A_DIRECTORY", `${rel}: not a directory (or a parent is not)`),
  EISDIR: (rel) => new ApiError("IS_A_DIRECTORY", `${rel}: is a directory`),
  EEXIST: (rel) => new ApiError("ALREADY_EXISTS", `${rel}: already exists`),
  ENOTEMPTY: (rel) => new ApiError("DIRECTORY_NOT_EMPTY", `${rel}: directory not empty`),
  EACCES: (rel) => new ApiError("PERMISSION_DENIED", `${rel}: permission denied`),
  EPERM: (rel) => new ApiError("PERMISSION_DENIED", `${rel}: operation not permitted`),
  EROFS: (rel) => new ApiError("PERMISSION_DENIED", `${rel}: read-only file system`),
  ENOSPC: (rel) => new ApiError("NO_SPACE", `${rel}: no space left on device`),
  EDQUOT: (rel) => new ApiError("NO_SPACE", `${rel}: disk quota exceeded`),
  ENAMETOOLONG: (rel) => new ApiError("INVALID_PATH", `${rel}: name too long`),
  ELOOP: (rel) => new ApiError("INVALID_PATH", `${rel}: too many levels of symbolic links`),
};

/** Maps a file-system error to the API error a caller can act on; unknown errors pass through. */
export function fsError(error: unknown, rel: string): unknown {
  if (error instanceof ApiError) return error;
  const code = error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined;
  const make = code === undefined ? undefined : BY_ERRNO[code];
  return make ? make(rel) : error;
}

/** Runs `op`, translating file-system errors about `rel`. */
export async function onPath<T>(rel: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (error) {
    throw fsError(error, rel);
  }
}
