// A probe's stderr goes into the job log, line by line: escaped (a client cannot forge a log
// line or hide bytes) and cut at 4096 characters (nor flood the log with one endless line).
import type { Readable } from 'node:stream';

const maxLine = 4096;
const keptLines = 5;

export interface ProbeDiagnostics {
  /** The last few lines, raw (cut, not escaped): for an error message when the probe stops. */
  lastLines(): string[];
}

export function copyProbeDiagnostics(stream: Readable | undefined, log: (line: string) => void): ProbeDiagnostics {
  const last: string[] = [];
  if (stream) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => {
      const lines = (rest + s).split('\n');
      rest = lines.pop() ?? '';
      if (rest.length > maxLine) rest = rest.slice(0, maxLine);
      for (const l of lines) {
        const line = l.slice(0, maxLine);
        last.push(line);
        if (last.length > keptLines) last.shift();
        log(`probe: ${JSON.stringify(line).slice(1, -1)}`);
      }
    });
  }
  return { lastLines: () => [...last] };
}
