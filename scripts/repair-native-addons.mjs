// Some prebuilt addons crash on load on Debian 12 (argon2 0.45's glibc prebuild segfaults in
// dlopen). Load each addon in a child process; if it dies, rebuild it from source.
import { spawnSync } from 'node:child_process';

const addons = ['argon2', 'zstd-napi'];

for (const name of addons) {
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(name)})`], { stdio: 'pipe' });
  if (probe.status === 0) continue;
  console.error(`haul: the installed ${name} addon does not load (exit ${probe.status ?? probe.signal}); rebuilding it from source`);
  const rebuild = spawnSync('npm', ['rebuild', name, '--foreground-scripts'], {
    stdio: 'inherit',
    env: { ...process.env, npm_config_build_from_source: 'true' },
  });
  const again = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(name)})`], { stdio: 'pipe' });
  if (rebuild.status !== 0 || again.status !== 0) {
    console.error(`haul: ${name} still does not load after a rebuild from source. Install build-essential and python3 (apt-get install -y build-essential python3), then run npm ci again.`);
    process.exit(1);
  }
}
