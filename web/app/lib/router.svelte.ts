// Pages are addressed by the URL fragment (#/users), so the server serves one HTML file and a
// reload or a bookmark lands on the same page.
export const PAGES = ['dashboard', 'clients', 'jobs', 'snapshots', 'statistics', 'users', 'audit', 'account'] as const;
export type Page = (typeof PAGES)[number];

function fromHash(): Page {
  const name = location.hash.replace(/^#\/?/, '').split('/')[0] ?? '';
  return (PAGES as readonly string[]).includes(name) ? (name as Page) : 'dashboard';
}

export const route = $state<{ page: Page }>({ page: fromHash() });

window.addEventListener('hashchange', () => {
  route.page = fromHash();
});

export function go(page: Page): void {
  location.hash = `#/${page}`;
}
