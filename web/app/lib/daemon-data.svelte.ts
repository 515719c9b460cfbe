// Pages about backups load from the daemon through the API; "not connected" is a normal state
// for them to show, not an error.
import { ApiError, api, messageOf } from './api';

export type DaemonData<T> =
  | { state: 'loading' }
  | { state: 'not-connected' }
  | { state: 'error'; message: string }
  | { state: 'ready'; value: T };

export function daemonData<T>(path: string, pick: (body: Record<string, unknown>) => T): { current: DaemonData<T>; reload(): void } {
  const box = $state<{ current: DaemonData<T> }>({ current: { state: 'loading' } });
  const reload = () => {
    api.get<Record<string, unknown>>(path).then(
      (body) => (box.current = { state: 'ready', value: pick(body) }),
      (err: unknown) => (box.current = err instanceof ApiError && err.code === 'DaemonNotConnected' ? { state: 'not-connected' } : { state: 'error', message: messageOf(err) }),
    );
  };
  reload();
  return {
    get current() {
      return box.current;
    },
    reload,
  };
}
