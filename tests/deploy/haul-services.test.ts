// scripts/haul-services.sh in its pid-file mode (no systemd here), in a temporary HAUL_HOME: start
// brings up the real daemon (answering on its bus) and the real console (answering HTTP), a
// second start changes nothing, status says what runs, stop ends both, and a start that cannot
// work says why without leaving anything behind.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haulEnv, haulSync, projectRoot, tempDir } from '../helpers/cli.js';
import { freePort } from '../helpers/sshd.js';

const script = path.join(projectRoot, 'scripts', 'haul-services.sh');

describe('scripts/haul-services.sh', () => {
  const tmp = tempDir('svc');
  const home = path.join(tmp.dir, 'home');
  let env: Record<string, string>;
  let listen: string;
  const run = (...args: string[]) => spawnSync('bash', [script, ...args], { env, encoding: 'utf8', timeout: 180_000 });
  const pidOf = (name: string) => Number(fs.readFileSync(path.join(home, 'run', `${name}.pid`), 'utf8'));
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    listen = `127.0.0.1:${await freePort()}`;
    fs.writeFileSync(path.join(tmp.dir, 'passphrase'), 'correct horse battery staple\n');
    env = {
      ...haulEnv(path.join(home, 'repository'), { HAUL_HOME: home }),
      HAUL_PASSWORD_FILE: path.join(tmp.dir, 'passphrase'),
      HAUL_SERVICES_MODE: 'pidfile',
      HAUL_WEB_LISTEN: listen,
      HAUL_HTTP_PORT: 'off',
    };
    delete env['HAUL_PASSWORD'];
    expect(haulSync(['init'], env).status).toBe(0);
  }, 60_000);

  afterAll(() => {
    // Whatever a failed test left running.
    for (const name of ['web', 'daemon']) {
      const file = path.join(home, 'run', `${name}.pid`);
      if (fs.existsSync(file) && alive(pidOf(name))) process.kill(pidOf(name), 'SIGKILL');
    }
    tmp.cleanup();
  });

  it('refuses to start without a repository, saying what to run', () => {
    const r = spawnSync('bash', [script, 'start'], { env: { ...env, HAUL_REPOSITORY: path.join(tmp.dir, 'none') }, encoding: 'utf8' });
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 1, stdout: '', stderr: `haul-services: no repository at ${path.join(tmp.dir, 'none')}; run \`bash scripts/setup.sh\` (or \`haul init\`) first.\n` });
    expect(fs.existsSync(path.join(home, 'run', 'daemon.pid'))).toBe(false);
  });

  it('starts the daemon and the console, reports them, starts nothing twice, and stops both', async () => {
    const started = run('start');
    expect({ status: started.status, stderr: started.stderr }).toEqual({ status: 0, stderr: '' });
    const daemonPid = pidOf('daemon');
    const webPid = pidOf('web');
    expect(started.stdout).toBe(`daemon: started (pid ${daemonPid}, log ${home}/log/daemon.out)\nweb: started (pid ${webPid}, log ${home}/log/web.out)\n`);

    // The daemon answers on its bus, the console over HTTP.
    const status = haulSync(['status', '--json'], env);
    expect(status.status).toBe(0);
    expect((JSON.parse(status.stdout) as { pid: number }).pid).toBe(daemonPid);
    const page = await fetch(`http://${listen}/`);
    expect(page.status).toBe(200);
    expect(fs.readFileSync(path.join(home, 'log', 'web.out'), 'utf8')).toContain(`Haul console on http://${listen} `);
    expect(fs.readFileSync(path.join(home, 'log', 'daemon.log'), 'utf8')).toContain('"msg":"haul daemon started');

    const again = run('start');
    expect({ status: again.status, stdout: again.stdout }).toEqual({ status: 0, stdout: `daemon: already running (pid ${daemonPid})\nweb: already running (pid ${webPid})\n` });
    const report = run('status');
    expect({ status: report.status, stdout: report.stdout }).toEqual({ status: 0, stdout: `daemon: running (pid ${daemonPid})\nweb: running (pid ${webPid})\n` });

    const stopped = run('stop');
    expect({ status: stopped.status, stdout: stopped.stdout }).toEqual({ status: 0, stdout: 'web: stopped\ndaemon: stopped\n' });
    expect([alive(daemonPid), alive(webPid)]).toEqual([false, false]);
    expect(fs.existsSync(path.join(home, 'run', 'daemon.pid'))).toBe(false);
    expect(fs.existsSync(path.join(home, 'run', 'commands.sock'))).toBe(false);
    const after = run('status');
    expect({ status: after.status, stdout: after.stdout }).toEqual({ status: 3, stdout: 'daemon: stopped\nweb: stopped\n' });
  }, 240_000);

  it('does not mistake a stale pid file for a running service', () => {
    fs.writeFileSync(path.join(home, 'run', 'daemon.pid'), `${process.pid}\n`);
    const r = run('status');
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 3, stdout: 'daemon: stopped\nweb: stopped\n' });
    const stop = run('stop');
    expect(stop.stdout).toBe('web: not running\ndaemon: not running\n');
    expect(alive(process.pid)).toBe(true);
  });
});
