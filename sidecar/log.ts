// pino JSON logs; readable lines when a person is watching (TTY or HC_LOG_PRETTY=1).
// Secrets never reach a log line: the redaction paths below cover every place one could sit.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'hcsync',
    level: opts.level ?? 'info',
    redact: {
      paths: ['password', '*.password', 'clientSecret', '*.clientSecret', 'refreshToken', '*.refreshToken', 'privateKey', '*.privateKey', 'accessToken', '*.accessToken', 'headers.authorization', '*.headers.authorization'],
      censor: '***',
    },
    transport: opts.pretty ? { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,name' } } : undefined,
  });
}
