// The daemon's own structured log (pino, one JSON object a line): starts, stops, job state
// changes, schedules, errors with stacks. Separate from the per-job plain-text logs auditors read.
// Written synchronously, so the last lines before a crash or kill -9 are on disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';
import { HaulError } from '../../shared/errors.js';

export type DaemonLogger = Logger;

const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function createDaemonLogger(options: { file: string | undefined; level: string; daemonId: string }): DaemonLogger {
  if (!levels.includes(options.level)) {
    throw new HaulError('InvalidArgument', `log level ${JSON.stringify(options.level)} is not one of ${levels.join(', ')}.`);
  }
  let destination: pino.DestinationStream;
  if (options.file) {
    try {
      fs.mkdirSync(path.dirname(options.file), { recursive: true, mode: 0o750 });
      destination = pino.destination({ dest: options.file, sync: true, mode: 0o640 });
    } catch (err) {
      throw new HaulError('InvalidArgument', `cannot open the daemon log ${options.file}: ${(err as Error).message}. Choose a writable file (--log-file, HAUL_LOG_FILE) or leave it unset to log to stderr.`);
    }
  } else {
    destination = pino.destination({ dest: 2, sync: true });
  }
  return pino({ level: options.level, base: { daemon: options.daemonId, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
