// Picks the storage backend from a repository location: `s3:https://HOST/BUCKET[/PREFIX]` is an
// S3-compatible bucket, anything else a local directory. Every place that opens a repository
// comes through here, so a location means the same thing to the CLI and the daemon.
import { HaulError } from '../../shared/errors.js';
import { LocalStorage } from './local.js';
import type { Storage } from './storage.js';

export async function openStorage(location: string, env: NodeJS.ProcessEnv = process.env): Promise<Storage> {
  if (location.startsWith('s3:')) {
    // The SDK warns on stderr, once per process, that its 2027 releases will need Node 22: that
    // is for whoever picks Haul's Node version (docs/deployment.md), not for each backup's output.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    // Lazily: the AWS SDK is heavy, and a local repository should not pay for loading it.
    const { S3Storage, parseS3Location, s3OptionsFromEnv } = await import('./s3.js');
    return new S3Storage(parseS3Location(location), s3OptionsFromEnv(env));
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  if (scheme) {
    throw new HaulError('InvalidArgument', `the repository location ${JSON.stringify(location)} uses ${scheme}://, which Haul does not know. Give a local directory, or s3:https://HOST[:PORT]/BUCKET[/PREFIX] for an S3-compatible bucket.`);
  }
  return new LocalStorage(location);
}
