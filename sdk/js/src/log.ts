/** The SDK's logger: console output filtered by `logLevel` (none < error < warn < info < debug). */

/** Logging functions. */
export interface Logger {
  error: (...a: unknown[]) => void;
  warn: (...a: unknown[]) => void;
  info: (...a: unknown[]) => void;
  debug: (...a: unknown[]) => void;
  level: number;
}

const LEVELS = { none: 0, error: 1, warn: 2, info: 3, debug: 4 } as const;

/** A logger at `level`, each line prefixed with `prefix`. */
export function makeLogger(level: keyof typeof LEVELS, prefix: string): Logger {
  const n = LEVELS[level] ?? 1;
  const at = (l: number, f: (...a: unknown[]) => void) => (n >= l ? (...a: unknown[]) => f(`[${prefix}]`, ...a) : () => {});
  return {
    level: n,
    error: at(1, console.error),
    warn: at(2, console.warn),
    info: at(3, console.info),
    debug: at(4, console.debug),
  };
}

/** Debug-logs without building the message when debug is off. */
export function dbg(log: Logger, what: string, value: unknown): void {
  if (log.level >= 4) log.debug(what, value);
}
