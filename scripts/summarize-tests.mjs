// Reads vitest JSON reports and prints the one closing line CI looks for: "N passed, N failed".
// A report that is missing or unreadable counts as a failure: the run stopped before its tests.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
for (const file of process.argv.slice(2)) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    console.error(`no test report at ${file}: that run stopped before its tests finished`);
    failed += 1;
    continue;
  }
  passed += report.numPassedTests ?? 0;
  failed += report.numFailedTests ?? 0;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A suite that failed to load has no failed tests of its own; count it, or it would pass silently.
  for (const suite of report.testResults ?? []) {
    const file = suite.name ? relative(process.cwd(), suite.name) : '?';
    if (suite.status === 'failed' && (suite.assertionResults ?? []).every((a) => a.status !== 'failed')) {
      failed += 1;
      failures.push(`${file}: the file failed to load: ${firstLine(suite.message)}`);
    }
    for (const a of suite.assertionResults ?? []) {
      if (a.status === 'failed') failures.push(`${file} > ${a.fullName ?? a.title}: ${firstLine(a.failureMessages?.[0])}`);
    }
  }
}
// CI shows only the end of the output: name each failure just above the closing line.
for (const f of failures) console.log(`FAILED ${f}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

function firstLine(text) {
  return String(text ?? '').split('\n').find((l) => l.trim() !== '')?.trim().slice(0, 400) ?? '';
}
