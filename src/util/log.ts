/**
 * The daemon's log: one line per entry on stderr, `<ISO time> LEVEL [scope] message`, filtered
 * by the configured level. stdout stays free for what a user pastes (watch lines, JSON results).
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A logger for a sub-concern sharing this one's level: `[daemon:cam1]`. */
  child(scope: string): Logger;
  setLevel(level: LogLevel): void;
}

export function createLogger(scope: string, level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Logger {
  const state = { level };
  const make = (name: string): Logger => {
    const emit = (at: LogLevel, message: string) => {
      if (LOG_LEVELS.indexOf(at) < LOG_LEVELS.indexOf(state.level)) return;
      write(`${new Date().toISOString()} ${at.toUpperCase().padEnd(5)} [${name}] ${message}`);
    };
    return {
      debug: (m) => emit('debug', m),
      info: (m) => emit('info', m),
      warn: (m) => emit('warn', m),
      error: (m) => emit('error', m),
      child: (sub) => make(`${name}:${sub}`),
      setLevel: (l) => {
        state.level = l;
      },
    };
  };
  return make(scope);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
