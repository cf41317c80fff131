// The two ways a2 refuses to go on. The CLI maps them to exit codes (usage 2, input 1).

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
