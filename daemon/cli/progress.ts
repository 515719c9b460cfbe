// Long operations report progress: a bar on a terminal, a plain line every few seconds otherwise
// (logs and pipes), and nothing with --quiet.
import cliProgress from 'cli-progress';
import { formatBytes } from '../../shared/display.js';

export { formatBytes };

export interface ProgressReporter {
  update(done: number, total: number | undefined, detail: string): void;
  stop(): void;
}

export function createProgress(label: string, options: { quiet?: boolean; bytes?: boolean }): ProgressReporter {
  if (options.quiet) return { update: () => undefined, stop: () => undefined };
  const fmt = (n: number) => (options.bytes ? formatBytes(n) : String(n));
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {done}/{totalText} {detail}`, stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total, detail) {
        const t = total && total >= done ? total : Math.max(done, 1);
        const payload = { done: fmt(done), totalText: total ? fmt(total) : '?', detail: detail.slice(-40) };
        if (!started) {
          bar.start(t, done, payload);
          started = true;
        } else {
          bar.setTotal(t);
          bar.update(done, payload);
        }
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let last = Date.now();
  return {
    update(done, total, detail) {
      const now = Date.now();
      if (now - last < 5000) return;
      last = now;
      process.stderr.write(`${label}: ${fmt(done)}${total ? ` of ${fmt(total)}` : ''} ${detail}\n`);
    },
    stop() {},
  };
}
