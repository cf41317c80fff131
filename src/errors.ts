// The ways a2 refuses to go on. The CLI maps them to exit codes (usage 2, input and run 1)
// and prints each as one line; a stack trace only with A2_DEBUG=1.

/** A bad flag, experiment name or argument: the user typed something a2 cannot take. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A file a2 read is missing, truncated or not what it should be. The message names it. */
export class InputError extends Error {
  override name = 'InputError';
  constructor(file: string, expected: string, found: string) {
    super(`${file}: expected ${expected}, found ${found}`);
  }
}

/** A run that cannot go on (diverged, interrupted, its folder held by another a2): the message says why and what to do. */
export class RunError extends Error {
  override name = 'RunError';
}

/** Node's own file-system errors carry a code, the call and the path: enough for one line. */
interface SystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
}

const SYSTEM_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EISDIR: 'is a directory, expected a file',
  ENOTDIR: 'a file is in the way where a folder should be',
  EEXIST: 'already exists',
  ENOENT: 'no such file or folder',
};

function isSystemError(err: unknown): err is SystemError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string' && 'syscall' in err;
}

/**
 * The one line a2 prints for a failure. Its own errors are their message; a file-system error
 * names the path and what went wrong; anything else is its message with a pointer to A2_DEBUG.
 * With A2_DEBUG=1 the stack trace follows.
 */
export function describeError(err: unknown, env: NodeJS.ProcessEnv = process.env): string {
  const debug = env.A2_DEBUG === '1';
  let line: string;
  if (err instanceof UsageError || err instanceof InputError || err instanceof RunError) line = err.message;
  else if (isSystemError(err)) {
    const reason = SYSTEM_REASONS[err.code] ?? err.message.split('\n')[0];
    line = `${err.path ?? '(no path given)'}: cannot ${err.syscall ?? 'access'}: ${reason} (${err.code})`;
  } else if (err instanceof Error)
    line = `${err.name}: ${err.message.split('\n')[0]}${debug ? '' : ' (A2_DEBUG=1 prints the stack trace)'}`;
  else line = String(err);
  return debug && err instanceof Error && err.stack ? `${line}\n${err.stack}` : line;
}
