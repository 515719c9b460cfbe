// How a HaulError travels over HTTP: a status code for the client library and the same stable
// code and actionable message the CLI prints, as `{ "error": { "code", "message" } }`.
import type { NextFunction, Request, Response } from 'express';
import { HaulError, type ErrorCode } from '../../shared/errors.js';

const statusOf: Partial<Record<ErrorCode, number>> = {
  InvalidArgument: 400,
  Unauthenticated: 401,
  LoginFailed: 401,
  TotpRequired: 401,
  Forbidden: 403,
  CsrfRejected: 403,
  AccountDisabled: 403,
  PasswordChangeRequired: 403,
  SecondFactorRequired: 403,
  DirectoryNoRole: 403,
  DirectoryAccount: 409,
  UserNotFound: 404,
  JobNotFound: 404,
  ClientNotFound: 404,
  SnapshotNotFound: 404,
  PathNotFound: 404,
  ClientDisabled: 409,
  RestoreRefused: 409,
  DaemonBusy: 503,
  BusTimeout: 503,
  TokenNotFound: 404,
  UserExists: 409,
  LastAdmin: 409,
  TenantNotFound: 404,
  TenantExists: 409,
  TenantInUse: 409,
  AccountLocked: 423,
  RateLimited: 429,
  DaemonNotConnected: 503,
  DatabaseUnavailable: 503,
  DirectoryUnavailable: 503,
};

export function httpStatusOf(err: HaulError): number {
  return statusOf[err.code] ?? 500;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The last middleware: every failure becomes a JSON error; unexpected ones are logged, not shown. */
export function errorHandler(log: (message: string) => void) {
  return (err: unknown, _req: Request, res: Response, next: NextFunction): void => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof HaulError) {
      const retryAfter = (err as { retryAfterSeconds?: unknown }).retryAfterSeconds;
      if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
      res.status(httpStatusOf(err)).json(errorBody(err.code, err.message));
      return;
    }
    // body-parser's errors: malformed JSON or a body over the limit.
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const message = status === 413 ? 'the request body is too large (at most 64 KiB).' : `the request body is not valid JSON: ${(err as Error).message}. Send a JSON object with Content-Type: application/json.`;
      res.status(status).json(errorBody('InvalidArgument', message));
      return;
    }
    log(`unexpected error: ${(err as Error)?.stack ?? String(err)}`);
    res.status(500).json(errorBody('Internal', 'the console hit an unexpected error (it is in the server log). Try again; if it persists, report it with the log lines.'));
  };
}
