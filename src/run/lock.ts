// One a2 process per staging folder: two runs of the same experiment into the same outputs
// folder would share its files and checkpoints, and the later would silently replace the
// earlier. The lock file names its holder so the refusal can say who it is.
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RunError } from '../errors.js';

export const LOCK_FILE = 'lock.json';

interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return typeof holder.pid === 'number' && typeof holder.host === 'string' ? (holder as LockHolder) : undefined;
  } catch {
    return undefined; // unreadable or half-written: treated as stale below
  }
}

const sameHolder = (a: LockHolder | undefined, b: LockHolder | undefined) =>
  a === undefined ? b === undefined : b !== undefined && a.pid === b.pid && a.host === b.host && a.startedAt === b.startedAt;

/**
 * Moves the lock judged stale (its holder `stale`) out of the way; true if it was that lock.
 * The rename succeeds for one process only; the others find the name gone and retry the link.
 * Between reading the holder and the rename, another process may have taken the stale lock over
 * and linked its own live one: then the live lock is what moved, and it is linked back.
 */
export function moveAsideStale(file: string, stale: LockHolder | undefined): boolean {
  const aside = `${file}.stale-${process.pid}`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return false;
    throw err;
  }
  try {
    if (sameHolder(readHolder(aside), stale)) return true;
    try {
      linkSync(aside, file);
    } catch (err) {
      // EEXIST: a third process holds the name now; the live lock we moved was replaced anyway.
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    return false;
  } finally {
    rmSync(aside, { force: true });
  }
}

/**
 * Takes `dir`/lock.json for this process, or throws a RunError naming the process that holds it.
 * A lock whose holder is gone (same host, pid no longer running) is taken over, with a note.
 * Returns the release function.
 */
export function acquireLock(dir: string, log: (line: string) => void): () => void {
  const file = path.join(dir, LOCK_FILE);
  const me: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    startedAt: new Date().toISOString(),
    command: process.argv.slice(2).join(' '),
  };
  // The lock appears whole or not at all: written to a file of our own, then hard-linked into
  // place (link fails if the name exists), so no reader ever sees it empty or half-written.
  const mine = `${file}.${process.pid}.tmp`;
  writeFileSync(mine, `${JSON.stringify(me, null, 2)}\n`);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, file);
        // Released on any exit too: a second Ctrl-C ends the process at once (exit 130).
        const release = () => {
          process.off('exit', release);
          if (readHolder(file)?.pid === me.pid) rmSync(file, { force: true });
        };
        process.on('exit', release);
        return release;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST' || attempt >= 3) throw err;
      }
      const holder = readHolder(file);
      if (holder && (holder.host !== me.host || isRunning(holder.pid))) {
        throw new RunError(
          `${dir} is in use by another a2 run (pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}${holder.command ? `: a2 ${holder.command}` : ''}); wait for it to finish or use another --out${holder.host !== me.host ? `, or delete ${file} if that run is gone` : ''}`,
        );
      }
      if (moveAsideStale(file, holder))
        log(
          holder
            ? `note: taking over the lock of pid ${holder.pid} (started ${holder.startedAt}), which is no longer running`
            : `note: taking over an unreadable lock file ${file}`,
        );
    }
  } finally {
    rmSync(mine, { force: true });
  }
}
