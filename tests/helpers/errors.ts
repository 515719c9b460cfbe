import { isHaulError, type HaulError } from '../../shared/errors.js';

/** The HaulError a promise rejects with; anything else (or success) fails the test. */
export async function failure(p: Promise<unknown>): Promise<HaulError> {
  try {
    await p;
  } catch (err) {
    if (isHaulError(err)) return err;
    throw err;
  }
  throw new Error('expected a HaulError, got success');
}
