// hf_hub_download for model repos: a file of {repo}@{revision} into the shared
// cache, or found there offline; concurrent callers share one download.
import { existsSync } from 'node:fs';
import { COMMIT_HASH, cachedFile, linkSnapshot, repoCache, writeRef } from './cache.js';
import { HubError } from './errors.js';
import { downloadBlob, fetchMetadata, sameOrHubHost, type RequestContext } from './http.js';
import { withFileLock } from './lock.js';
import { hubSettings, type HubSettings } from './settings.js';
import { goodsrecVersion } from '../util/version.js';

export interface HubDownloadOptions {
  revision?: string;
  settings?: HubSettings;
  /** Progress bar on stderr (default true). */
  progress?: boolean;
  /** Notes (served from cache after an error, waiting for another process). */
  log?: (message: string) => void;
}

export interface HubFile {
  /** snapshots/<commit>/<file> in the cache. */
  path: string;
  commit: string | null;
  /** Served from the cache without a download. */
  cached: boolean;
}

/** {endpoint}/{repo}/resolve/{revision}/{file}, quoted as huggingface_hub's hf_hub_url does. */
export function hubFileUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

export function checkRepoId(repo: string): void {
  if (!/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(repo) || repo.includes('..') || repo.includes('--')) {
    throw new HubError(
      'BAD_NAME',
      `'${repo}' is not a Hub repository id (expected org/name, e.g. timm/resnet50.a1_in1k)`,
    );
  }
}

export async function hubDownload(repo: string, file: string, o: HubDownloadOptions = {}): Promise<HubFile> {
  checkRepoId(repo);
  const s = o.settings ?? hubSettings();
  const revision = o.revision ?? 'main';
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const c = repoCache(s.cacheDir, repo);
  if (COMMIT_HASH.test(revision) && existsSync(c.pointer(revision, file)))
    return { path: c.pointer(revision, file), commit: revision, cached: true };
  const cached = cachedFile(c, revision, file);
  if (s.offline) {
    if (cached) return { path: cached, commit: null, cached: true };
    throw new HubError(
      'OFFLINE_NOT_CACHED',
      `HF_HUB_OFFLINE=1 and ${repo}/${file} (revision '${revision}') is not in the cache ${s.cacheDir}: ` +
        `run 'goodsrec pull hf-hub:${repo}${revision === 'main' ? '' : `@${revision}`}' where the Hub is reachable, or unset HF_HUB_OFFLINE`,
    );
  }
  const headers: Record<string, string> = { 'user-agent': `goodsrec/${goodsrecVersion()}` };
  if (s.token) headers.authorization = `Bearer ${s.token}`;
  const ctx: RequestContext = { repo, file, revision, withToken: s.token !== null };
  const url = hubFileUrl(s.endpoint, repo, revision, file);
  let meta: Awaited<ReturnType<typeof fetchMetadata>>;
  try {
    meta = await fetchMetadata(url, headers, ctx);
  } catch (e) {
    // As huggingface_hub: when the Hub cannot be asked, a cached copy of the revision is used.
    if (cached && e instanceof HubError && (e.code === 'NETWORK' || e.code === 'SERVER')) {
      log(`${e.message}; using the cached ${cached}`);
      return { path: cached, commit: null, cached: true };
    }
    throw e;
  }
  writeRef(c, revision, meta.commit);
  const pointer = c.pointer(meta.commit, file);
  if (existsSync(pointer)) return { path: pointer, commit: meta.commit, cached: true };
  const blob = c.blob(meta.etag);
  let downloaded = false;
  await withFileLock(
    c.lock(meta.etag),
    async () => {
      if (!existsSync(blob)) {
        const getHeaders = { ...headers };
        if (!sameOrHubHost(url, meta.location)) delete getHeaders.authorization; // a signed CDN URL needs no token
        await downloadBlob({
          url: meta.location,
          headers: getHeaders,
          dest: blob,
          size: meta.size,
          etag: meta.etag,
          label: `${repo}/${file}`,
          progress: o.progress ?? true,
          ctx,
        });
        downloaded = true;
      }
      linkSnapshot(c, meta.commit, file, meta.etag);
    },
    () => log(`${repo}/${file}: another process is downloading it; waiting`),
  );
  return { path: pointer, commit: meta.commit, cached: !downloaded };
}
