// Pages are addressed by the URL fragment (#/users), so the server serves one HTML file and a
// reload or a bookmark lands on the same page.
export const PAGES = ['dashboard', 'clients', 'jobs', 'snapshots', 'statistics', 'users', 'tenants', 'audit', 'account'] as const;
export type Page = (typeof PAGES)[number];

/** `#/jobs/12` → page jobs, rest ['12']; `#/snapshots/web1/1a2b3c4d?path=%2Fetc` → query path=/etc. */
function fromHash(): { page: Page; rest: string[]; query: URLSearchParams } {
  const [pathPart = '', queryPart = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name = '', ...rest] = pathPart.split('/').map((p) => decodeURIComponent(p));
  const page = (PAGES as readonly string[]).includes(name) ? (name as Page) : 'dashboard';
  return { page, rest: rest.filter(Boolean), query: new URLSearchParams(queryPart) };
}

export const route = $state<{ page: Page; rest: string[]; query: URLSearchParams }>(fromHash());

window.addEventListener('hashchange', () => {
  Object.assign(route, fromHash());
});

/** A link inside the app; every part is URL-encoded, so names cannot change the link's meaning. */
export function href(page: Page, rest: (string | number)[] = [], query: Record<string, string> = {}): string {
  const q = new URLSearchParams(query).toString();
  return `#/${[page, ...rest.map((r) => encodeURIComponent(String(r)))].join('/')}${q ? `?${q}` : ''}`;
}

export function go(page: Page): void {
  location.hash = `#/${page}`;
}
