import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON logs to stdout; pretty-printed when stdout is a terminal. */
export function createLogger(level: string, name = 'tally'): Logger {
  const pretty = process.stdout.isTTY === true;
  return pino({
    name,
    level,
    ...(pretty
      ? { transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname' } } }
      : {}),
  });
}
