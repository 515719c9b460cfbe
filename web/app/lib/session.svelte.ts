// Who is logged in, shared by every page. The CSRF token arrives with the login answer and with
// GET /api/me (after a reload), and goes on every request that changes something.
import { ApiError, api, setCsrfToken } from './api';
import type { Me } from './types';

export const session = $state<{ me: Me | null; checked: boolean }>({ me: null, checked: false });

export function applyMe(me: Me | null): void {
  session.me = me;
  setCsrfToken(me?.csrfToken ?? null);
}

export async function loadSession(): Promise<void> {
  try {
    applyMe(await api.get<Me>('/api/me'));
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) console.error(err);
    applyMe(null);
  } finally {
    session.checked = true;
  }
}

export async function logout(): Promise<void> {
  try {
    await api.post('/api/logout');
  } finally {
    applyMe(null);
    location.hash = '';
  }
}
