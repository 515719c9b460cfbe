// The plain-text log of one job, for auditors: one line per event, each
// `<ISO time with ms> <LEVEL> <text>`, no colours, names and messages escaped so nothing in them
// can start a line or hide bytes. Every line is written to the file with one write() as it
// happens, so a killed daemon loses nothing it logged (a power cut may lose the last lines the
// kernel had not written yet). `finish()` fsyncs and returns the file's SHA-256, which the
// daemon stores in the job's row; `verifyJobLog` compares the file with it later. A job that
// never finished (the daemon was killed) has no stored hash, and verify says so.
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUS_PROTOCOL_VERSION, type JobLogEvent, type JobLogLevel } from '../../shared/bus/messages.js';
import { displayBytes, displayText, formatBytes, formatCount, formatDuration } from '../../shared/display.js';
import { HaulError } from '../../shared/errors.js';

export type { JobLogLevel };

/** One line as it was written, also handed to `onLine` (the daemon publishes it on the bus). */
export interface JobLogLine {
  jobId: number;
  at: Date;
  level: JobLogLevel;
  /** The line in the file, without its newline. */
  line: string;
}

export interface JobLogOptions {
  /** $HAUL_HOME: logs go to logs/YYYY/MM/job-<id>.log below it. */
  stateDir: string;
  jobId: number;
  /** The date the path is filed under (UTC); default now. */
  date?: Date;
  onLine?: (line: JobLogLine) => void;
  /** The time stamped on each line; default the system clock. */
  clock?: () => Date;
}

export interface JobLogSeal {
  path: string;
  /** SHA-256 of every byte written, which is the whole file unless someone else wrote to it. */
  sha256: string;
  bytes: number;
  lines: number;
  /** Lines that could not be written (a full disk, say), with the first error; they were still sent to onLine. */
  lostLines: number;
  firstWriteError: string | null;
}

/** The counts a summary line reports (a job row's counters fit). */
export interface JobSummary {
  kind: string;
  client: string | null;
  state: string;
  durationMs: number;
  filesDone: bigint | number;
  bytesScanned: bigint | number;
  bytesNew: bigint | number;
  bytesOnWire: bigint | number;
  errors: number;
  snapshotId?: string | null;
  failureMessage?: string | null;
}

/** A line longer than this is cut (and says how much was cut): one runaway message must not fill the disk. */
export const MAX_LOG_TEXT = 8192;
export const JOB_LOG_FILE_MODE = 0o640;
export const JOB_LOG_DIRECTORY_MODE = 0o750;

/** Absolute, since the path is stored in the job's row and read by other processes. */
export function jobLogDirectory(stateDir: string): string {
  return path.join(path.resolve(stateDir), 'logs');
}

export function jobLogPath(stateDir: string, jobId: number, date: Date): string {
  const month = String(date.getUTCMonth() + 1).padStart(2, '0');
  return path.join(jobLogDirectory(stateDir), String(date.getUTCFullYear()), month, `job-${jobId}.log`);
}

const logFileName = /^job-[0-9]+(-[0-9]+)?\.log$/;

export class JobLog {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private lines = 0;
  private lostLines = 0;
  private firstWriteError: string | null = null;
  private fd: number | undefined;
  private seal: JobLogSeal | undefined;

  private constructor(readonly path: string, fd: number, readonly jobId: number, private readonly options: JobLogOptions) {
    this.fd = fd;
  }

  /**
   * Creates the job's log file (mode 0640; directories 0750). The file must be new: if a log
   * of the same job ID exists (a database restored from an old copy hands out IDs again), the
   * new one is job-<id>-2.log and so on, and the old log is kept.
   */
  static create(options: JobLogOptions): JobLog {
    const first = jobLogPath(options.stateDir, options.jobId, options.date ?? new Date());
    fs.mkdirSync(path.dirname(first), { recursive: true, mode: JOB_LOG_DIRECTORY_MODE });
    for (let n = 1; n <= 100; n++) {
      const candidate = n === 1 ? first : first.replace(/\.log$/, `-${n}.log`);
      let fd: number;
      try {
        fd = fs.openSync(candidate, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, JOB_LOG_FILE_MODE);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw new HaulError('StorageFailure', `cannot create the log of job ${options.jobId} at ${candidate}: ${(err as Error).message}. Check that the daemon can write to ${jobLogDirectory(options.stateDir)}.`, { cause: err });
      }
      // The umask may have taken bits away; the mode is part of the contract (group-readable for auditors).
      fs.fchmodSync(fd, JOB_LOG_FILE_MODE);
      return new JobLog(candidate, fd, options.jobId, options);
    }
    throw new HaulError('StorageFailure', `cannot create the log of job ${options.jobId}: ${first} and 99 numbered variants exist already. Move old logs out of ${path.dirname(first)}.`);
  }

  info(text: string): void {
    this.write('INFO', text);
  }

  warn(text: string): void {
    this.write('WARN', text);
  }

  error(text: string): void {
    this.write('ERROR', text);
  }

  /** A line about one file: its name (raw bytes from a client, or text) quoted and escaped, then the problem. */
  fileProblem(level: JobLogLevel, name: Uint8Array | string, problem: string): void {
    // Valid UTF-8 comes back JSON-escaped (quotes too); a name shown byte by byte may still hold a
    // bare quote, which would make the quoted name's end ambiguous.
    const shown = typeof name === 'string' ? JSON.stringify(name).slice(1, -1) : isUtf8(name) ? displayBytes(name) : displayBytes(name).replaceAll('"', '\\x22');
    this.write(level, `"${shown}": ${problem}`);
  }

  /** The closing line: what the job did, in numbers. */
  summary(s: JobSummary): void {
    this.write(s.state === 'succeeded' ? 'INFO' : 'ERROR', jobSummaryText(s));
  }

  /** Flushes the file to disk, closes it and returns its SHA-256 (for the job's row). */
  finish(): JobLogSeal {
    if (this.seal) return this.seal;
    const fd = this.fd!;
    this.fd = undefined;
    try {
      fs.fsyncSync(fd);
    } catch (err) {
      this.noteWriteError(err);
    } finally {
      fs.closeSync(fd);
    }
    this.seal = { path: this.path, sha256: this.hash.digest('hex'), bytes: this.bytes, lines: this.lines, lostLines: this.lostLines, firstWriteError: this.firstWriteError };
    return this.seal;
  }

  private write(level: JobLogLevel, text: string): void {
    if (this.fd === undefined) throw new Error(`the log of job ${this.jobId} is finished; nothing more can be written to ${this.path}`);
    const at = (this.options.clock ?? (() => new Date()))();
    let shown = displayText(text);
    if (shown.length > MAX_LOG_TEXT) shown = `${shown.slice(0, MAX_LOG_TEXT)}… (${shown.length - MAX_LOG_TEXT} more characters cut)`;
    const line = `${at.toISOString()} ${level.padEnd(5)} ${shown}`;
    const bytes = Buffer.from(`${line}\n`, 'utf8');
    let written = 0;
    try {
      while (written < bytes.byteLength) written += fs.writeSync(this.fd, bytes, written);
      this.lines++;
    } catch (err) {
      this.lostLines++;
      this.noteWriteError(err);
    }
    // The hash covers exactly what reached the file, so it matches the file even after a failed write.
    this.hash.update(bytes.subarray(0, written));
    this.bytes += written;
    this.options.onLine?.({ jobId: this.jobId, at, level, line });
  }

  private noteWriteError(err: unknown): void {
    this.firstWriteError ??= (err as Error).message;
  }
}

/** The bus event for a line (the daemon passes `(l) => bus.publish(jobLogEvent(l))` as onLine). */
export function jobLogEvent(line: JobLogLine): JobLogEvent {
  return { v: BUS_PROTOCOL_VERSION, type: 'job-log', at: line.at.toISOString(), jobId: line.jobId, level: line.level, line: line.line };
}

export function jobSummaryText(s: JobSummary): string {
  const parts = [
    `${formatCount(s.filesDone)} files`,
    `${formatBytes(Number(s.bytesScanned))} scanned`,
    `${formatBytes(Number(s.bytesNew))} new`,
    `${formatBytes(Number(s.bytesOnWire))} on the wire`,
    `${formatCount(s.errors)} ${s.errors === 1 ? 'error' : 'errors'}`,
  ];
  if (s.snapshotId) parts.push(`snapshot ${s.snapshotId.slice(0, 8)}`);
  const what = `${s.kind}${s.client ? ` of ${s.client}` : ''}`;
  return `summary: ${what} ${s.state} after ${formatDuration(s.durationMs)}: ${parts.join(', ')}${s.failureMessage ? `; ${s.failureMessage}` : ''}`;
}

export type JobLogVerification =
  | { status: 'ok'; path: string; sha256: string; bytes: number }
  | { status: 'modified'; path: string; expected: string; actual: string; bytes: number }
  | { status: 'missing'; path: string }
  /** No hash was stored: the job has not finished, or the daemon was killed while it ran. */
  | { status: 'not-finished'; path: string; actual: string | null };

/** Compares a job's log file with the SHA-256 stored when the job ended. */
export async function verifyJobLog(file: string, expectedSha256: string | null): Promise<JobLogVerification> {
  let actual: { sha256: string; bytes: number };
  try {
    actual = await hashFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return expectedSha256 === null ? { status: 'not-finished', path: file, actual: null } : { status: 'missing', path: file };
    throw new HaulError('StorageFailure', `cannot read the job log ${file}: ${(err as Error).message}. Run the check as a user who can read the logs (the daemon's user or its group).`, { cause: err });
  }
  if (expectedSha256 === null) return { status: 'not-finished', path: file, actual: actual.sha256 };
  if (actual.sha256 === expectedSha256.toLowerCase()) return { status: 'ok', path: file, sha256: actual.sha256, bytes: actual.bytes };
  return { status: 'modified', path: file, expected: expectedSha256.toLowerCase(), actual: actual.sha256, bytes: actual.bytes };
}

/** One line for people about a verification. */
export function describeJobLogVerification(v: JobLogVerification): string {
  switch (v.status) {
    case 'ok':
      return `${v.path}: ok (${formatCount(v.bytes)} bytes, sha256 ${v.sha256})`;
    case 'modified':
      return `${v.path}: MODIFIED since the job ended: its SHA-256 is ${v.actual}, the database recorded ${v.expected}`;
    case 'missing':
      return `${v.path}: MISSING: the job's log file is gone (the database recorded its SHA-256)`;
    case 'not-finished':
      return `${v.path}: cannot be verified: no SHA-256 was recorded, because the job has not finished or the daemon stopped while it ran${v.actual === null ? ' (and the file does not exist)' : ''}`;
  }
}

async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export interface PrunedLogs {
  removed: string[];
  bytes: number;
}

/**
 * Deletes job logs last written before `olderThan`, then the month and year folders left empty:
 * the daemon calls it with the cutoff it uses for deleting job rows, so logs go with their
 * jobs. Only files named job-<id>[-n].log under logs/YYYY/MM/ are considered; links and other
 * files are left alone. A running job writes its log, so its log is never that old.
 */
export function pruneJobLogs(stateDir: string, olderThan: Date): PrunedLogs {
  const root = jobLogDirectory(stateDir);
  const result: PrunedLogs = { removed: [], bytes: 0 };
  for (const yearDir of subdirectories(root, /^[0-9]{4}$/)) {
    for (const monthDir of subdirectories(yearDir, /^[0-9]{2}$/)) {
      for (const name of readDirectory(monthDir).filter((n) => logFileName.test(n)).sort()) {
        const file = path.join(monthDir, name);
        const st = fs.lstatSync(file);
        if (!st.isFile() || st.mtimeMs >= olderThan.getTime()) continue;
        fs.unlinkSync(file);
        result.removed.push(file);
        result.bytes += st.size;
      }
      removeIfEmpty(monthDir);
    }
    removeIfEmpty(yearDir);
  }
  return result;
}

/** Real directories (not links, which could point outside the logs) named like `pattern`. */
function subdirectories(dir: string, pattern: RegExp): string[] {
  return readDirectory(dir)
    .filter((n) => pattern.test(n))
    .sort()
    .map((n) => path.join(dir, n))
    .filter((p) => fs.lstatSync(p).isDirectory());
}

function readDirectory(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    if (!['ENOTEMPTY', 'EEXIST', 'ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
}
