// A real OpenLDAP server for tests (Debian's slapd): on free ports of 127.0.0.1, LDAP (which
// requires StartTLS before anything else) and LDAPS, a certificate from a CA generated for the run, an mdb database loaded with
// slapadd, a service account, a few people and groupOfNames groups. Everything lives in one
// temporary directory, removed by stop(). The memberof overlay gives each person a memberOf
// attribute, so both ways of finding a user's groups (search, or memberOf) can be tested.
// `slapdSkipReason()` says why a suite cannot run.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './sshd.js';

export const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const LDAPADD = '/usr/bin/ldapadd';

export const BASE_DN = 'dc=haul,dc=test';
export const SERVICE_DN = `cn=haul-reader,ou=services,${BASE_DN}`;
export const SERVICE_PASSWORD = 'service-secret-Qx7';
const ROOT_DN = `cn=admin,${BASE_DN}`;
const ROOT_PASSWORD = 'admin-only-for-setup';

export interface DirectoryPerson {
  uid: string;
  password: string;
  /** Marked with employeeType=disabled, which the tests' directory config maps to "disabled". */
  disabled?: boolean;
}

export interface DirectoryGroup {
  cn: string;
  members: string[];
}

/** The people and groups every test directory holds. */
export const PEOPLE: DirectoryPerson[] = [
  { uid: 'alice', password: 'alice-password-1' },
  { uid: 'bob', password: 'bob-password-22' },
  { uid: 'carol', password: 'carol-password-3', disabled: true },
  { uid: 'dave', password: 'dave-password-44' },
  { uid: 'erin', password: 'erin-password-55' },
];

export const GROUPS: DirectoryGroup[] = [
  { cn: 'haul-admins', members: ['alice'] },
  { cn: 'haul-operators', members: ['bob', 'carol'] },
  { cn: 'acme-auditors', members: ['bob', 'erin'] },
  { cn: 'unrelated', members: ['dave'] },
];

export const userDn = (uid: string) => `uid=${uid},ou=people,${BASE_DN}`;
export const groupDn = (cn: string) => `cn=${cn},ou=groups,${BASE_DN}`;

export interface TestSlapd {
  /** ldap://127.0.0.1:PORT (plain; StartTLS offered). */
  readonly url: string;
  /** ldaps://127.0.0.1:PORT (TLS from the first byte). */
  readonly ldapsUrl: string;
  /** PEM file of the CA that signed the server's certificate. */
  readonly caFile: string;
  readonly dir: string;
  stop(): Promise<void>;
}

export function slapdSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'slapd tests run on Linux only';
  if (!fs.existsSync(SLAPD) || !fs.existsSync(SLAPADD) || !fs.existsSync(LDAPADD)) return `${SLAPD} is missing: apt-get install -y slapd ldap-utils (scripts/ensure-test-deps.sh)`;
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) return 'openssl is missing: apt-get install -y openssl';
  return undefined;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA and a server certificate for 127.0.0.1 and localhost, valid for a day. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=Haul test CA']);
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'server.ext']);
  // slapd may drop privileges on some systems; the key must stay readable for it.
  fs.chmodSync(path.join(dir, 'server.key'), 0o644);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

function configuration(dir: string, tls: { ca: string; cert: string; key: string }): string {
  return `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
TLSCACertificateFile ${tls.ca}
TLSCertificateFile ${tls.cert}
TLSCertificateKeyFile ${tls.key}
# Nothing in the clear: a client that skips StartTLS is refused, so a passing StartTLS test proves TLS.
security tls=1

database mdb
maxsize 16777216
suffix "${BASE_DN}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PASSWORD}
directory ${dir}/db
# Passwords only for binding; people read the tree only after binding (as Haul's service account does).
access to attrs=userPassword
  by anonymous auth
  by self write
  by * none
access to *
  by users read
  by * none
# memberOf on each person, kept by the server as groups change (as Active Directory has it).
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
`;
}

function groupsLdif(): string {
  return GROUPS.map((g) => `dn: ${groupDn(g.cn)}\nobjectClass: groupOfNames\ncn: ${g.cn}\n${g.members.map((m) => `member: ${userDn(m)}`).join('\n')}`).join('\n\n') + '\n';
}

function ldif(): string {
  const entries: string[] = [
    `dn: ${BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: haul\no: Haul tests`,
    `dn: ou=people,${BASE_DN}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ou=groups,${BASE_DN}\nobjectClass: organizationalUnit\nou: groups`,
    `dn: ou=services,${BASE_DN}\nobjectClass: organizationalUnit\nou: services`,
    `dn: ${SERVICE_DN}\nobjectClass: person\ncn: haul-reader\nsn: reader\nuserPassword: ${SERVICE_PASSWORD}`,
  ];
  for (const p of PEOPLE) {
    entries.push(`dn: ${userDn(p.uid)}\nobjectClass: inetOrgPerson\nuid: ${p.uid}\ncn: ${p.uid}\nsn: ${p.uid}\nuserPassword: ${p.password}${p.disabled ? '\nemployeeType: disabled' : ''}`);
  }
  return `${entries.join('\n\n')}\n`;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

export async function startSlapd(): Promise<TestSlapd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-slapd-'));
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'db'));
  const tls = makeCertificates(dir);
  const conf = path.join(dir, 'slapd.conf');
  fs.writeFileSync(conf, configuration(dir, tls));
  fs.writeFileSync(path.join(dir, 'data.ldif'), ldif());
  execFileSync(SLAPADD, ['-f', conf, '-l', path.join(dir, 'data.ldif')], { stdio: 'pipe' });
  const port = await freePort();
  let ldapsPort = await freePort();
  while (ldapsPort === port) ldapsPort = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
  const logFile = path.join(dir, 'slapd.log');
  const out = fs.openSync(logFile, 'a');
  // -d keeps slapd in the foreground, so stop() can end exactly this process.
  const child: ChildProcess = spawn(SLAPD, ['-f', conf, '-h', `${url}/ ${ldapsUrl}/`, '-d', 'stats'], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let exited = false;
  child.once('exit', () => { exited = true; });
  const deadline = Date.now() + 20_000;
  while (!(await listening(port)) || !(await listening(ldapsPort))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      const log = fs.readFileSync(logFile, 'utf8');
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`slapd did not start: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The groups go in through the running server (slapadd bypasses overlays), so memberOf is set.
  fs.writeFileSync(path.join(dir, 'groups.ldif'), groupsLdif());
  try {
    execFileSync(LDAPADD, ['-x', '-H', ldapsUrl, '-D', ROOT_DN, '-w', ROOT_PASSWORD, '-f', path.join(dir, 'groups.ldif')], { stdio: 'pipe', env: { ...process.env, LDAPTLS_CACERT: tls.ca } });
  } catch (err) {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`adding the test groups to slapd failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? (err as Error).message}`, { cause: err });
  }
  return {
    url, ldapsUrl, caFile: tls.ca, dir,
    async stop() {
      if (!exited) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
        if (!exited) child.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
