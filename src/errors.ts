// Errors shared by the commands and the engines (batch, node, forwarder), and the two ways an
// unexpected error may be shown: by its code only (logs, which must never carry an identifier
// that a message could hold) or in plain words (messages to the user).

/** A problem the user can fix (bad option value, unreadable CSV, a lock held): exit 2, one line. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An invalid node configuration (config file or flags); the message names the setting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * The error's system code (`ENOENT`, `SQLITE_BUSY`...) or class name, never its message: a
 * message may quote a path or a value, so only this goes to the application log.
 */
export function errorCode(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; name?: unknown };
    if (typeof e.code === 'string' && e.code !== '') return e.code;
    if (typeof e.name === 'string' && e.name !== '') return e.name;
  }
  return err === undefined || err === null ? 'Error' : typeof err;
}

const SYSTEM_WORDS: Record<string, string> = {
  ENOENT: 'not found',
  EISDIR: 'is a folder',
  ENOTDIR: 'a part of the path is not a folder',
  EACCES: 'permission denied',
  EPERM: 'not permitted',
  EROFS: 'the disk is read-only',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exceeded',
  EEXIST: 'already exists',
  EMFILE: 'too many open files',
  EBUSY: 'busy',
  EIO: 'input/output error (a disk problem)',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many symbolic links',
  EADDRINUSE: 'the port is already in use',
  EADDRNOTAVAIL: 'the address is not available on this machine',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the peer',
  EPIPE: 'connection closed by the peer',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name could not be looked up now (DNS)',
};

/**
 * A system error in plain words for a user ("not found", "is a folder", "read-only", "the disk
 * is full"), never a raw `ENOENT`; an unknown code is shown as is, any other error by its
 * message's first line.
 */
export function describeSystemError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code !== '') return SYSTEM_WORDS[code] ?? code;
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}
