// The Hub's HTTP protocol as huggingface_hub speaks it: a HEAD on /resolve/ for
// the file's metadata (commit, etag, size, where the bytes are), following only
// redirects that stay on the Hub; then a GET of the bytes with Range resume into
// `<blob>.incomplete`, size and sha256 checks, and an atomic rename.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, statSync, renameSync, unlinkSync, truncateSync } from 'node:fs';
import { dirname } from 'node:path';
import { open } from 'node:fs/promises';
import { HubError } from './errors.js';
import { byteProgress } from './progress.js';

const HUB_HOSTS = new Set(['huggingface.co', 'hf.co']);
const MAX_REDIRECTS = 10;
const SHA256 = /^[0-9a-f]{64}$/;

export interface FileMetadata {
  commit: string;
  /** Normalised ETag: X-Linked-Etag (LFS: the sha256) or ETag. */
  etag: string;
  size: number | null;
  /** Where the bytes are (a CDN URL after an LFS redirect). */
  location: string;
}

/** What the request was for, to word errors. */
export interface RequestContext {
  repo: string;
  file: string;
  revision: string;
  withToken: boolean;
}

const hostOf = (u: string): string => new URL(u).hostname.toLowerCase();
export const sameOrHubHost = (a: string, b: string): boolean => hostOf(a) === hostOf(b) || HUB_HOSTS.has(hostOf(b));

/** huggingface_hub's _normalize_etag: drop a weak prefix and the quotes. */
export function normalizeEtag(etag: string | null): string | null {
  return etag === null ? null : etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

const intOrNull = (v: string | null): number | null => (v !== null && /^\d+$/.test(v) ? Number(v) : null);

/** Turns a failed Hub response into a HubError with a sentence that says what to do. */
export function statusError(res: Response, ctx: RequestContext): HubError {
  const code = res.headers.get('x-error-code');
  const what = `${ctx.repo}/${ctx.file} at revision '${ctx.revision}'`;
  const s = res.status;
  if (code === 'RevisionNotFound')
    return new HubError(
      'REVISION_NOT_FOUND',
      `revision '${ctx.revision}' does not exist in ${ctx.repo} (HTTP ${s})`,
      s,
    );
  if (code === 'EntryNotFound')
    return new HubError(
      'ENTRY_NOT_FOUND',
      `${ctx.repo} has no file '${ctx.file}' at revision '${ctx.revision}' (HTTP ${s})`,
      s,
    );
  if (code === 'GatedRepo' || s === 403) {
    return new HubError(
      'FORBIDDEN',
      `access to ${what} is forbidden (HTTP ${s}): the repository is gated or the token lacks permission; ` +
        `accept its terms on the Hub and set HF_TOKEN to a token of an account with access`,
      s,
    );
  }
  if (s === 401 || code === 'RepoNotFound') {
    const tok = ctx.withToken
      ? 'the token in HF_TOKEN was not accepted for it; check that it is valid and has read access'
      : 'if it is private, set HF_TOKEN to an access token (huggingface.co/settings/tokens) with read access';
    return new HubError(
      s === 401 ? 'UNAUTHORIZED' : 'REPO_NOT_FOUND',
      `repository ${ctx.repo} not found or not accessible (HTTP ${s}): ${tok}`,
      s,
    );
  }
  if (s === 404) return new HubError('ENTRY_NOT_FOUND', `${what} not found (HTTP 404)`, s);
  if (s >= 500)
    return new HubError('SERVER', `the Hub answered HTTP ${s} for ${what}: a server-side problem; try again later`, s);
  return new HubError('HTTP', `unexpected HTTP ${s} for ${what}`, s);
}

function networkError(url: string, e: unknown): HubError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (e as Error).message;
  return new HubError(
    'NETWORK',
    `cannot reach ${new URL(url).origin} (${why}); check the network or HF_ENDPOINT, or work offline with HF_HUB_OFFLINE=1`,
  );
}

/** HEAD /resolve/: follows relative and same-host redirects (renamed repos), stops at a CDN redirect. */
export async function fetchMetadata(
  url: string,
  headers: Record<string, string>,
  ctx: RequestContext,
): Promise<FileMetadata> {
  let current = url;
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    let res: Response;
    try {
      res = await fetch(current, {
        method: 'HEAD',
        redirect: 'manual',
        headers: { ...headers, 'accept-encoding': 'identity' },
      });
    } catch (e) {
      throw networkError(current, e);
    }
    if (res.status >= 400) throw statusError(res, ctx);
    const loc = res.headers.get('location');
    const isRedirect = res.status >= 300 && res.status < 400 && loc !== null;
    if (isRedirect && sameOrHubHost(current, new URL(loc, current).href)) {
      current = new URL(loc, current).href;
      continue;
    }
    const commit = res.headers.get('x-repo-commit');
    if (!commit) {
      throw new HubError(
        'NOT_A_HUB',
        `${current} answered without an X-Repo-Commit header, so it is not a Hugging Face Hub endpoint; ` +
          'check HF_ENDPOINT and any proxy',
      );
    }
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (!etag)
      throw new HubError('NOT_A_HUB', `${current} gave no ETag for ${ctx.file}: the download could not be verified`);
    const size =
      intOrNull(res.headers.get('x-linked-size')) ?? (isRedirect ? null : intOrNull(res.headers.get('content-length')));
    return { commit, etag, size, location: isRedirect ? new URL(loc, current).href : current };
  }
  throw new HubError('HTTP', `more than ${MAX_REDIRECTS} redirects for ${url}`);
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface BlobDownload {
  url: string;
  headers: Record<string, string>;
  dest: string;
  /** Expected size (X-Linked-Size / Content-Length), when known. */
  size: number | null;
  /** An etag of 64 hex digits is the file's sha256 (LFS files) and is checked. */
  etag: string | null;
  label: string;
  progress: boolean;
  /** Checked sha256 for files whose etag is not one (torchvision's name prefix). */
  sha256Prefix?: string;
  /** For Hub error messages; without it errors name the URL. */
  ctx?: RequestContext;
}

/** GETs url into dest via `dest.incomplete`, resuming a partial file with Range; verifies, then renames. */
export async function downloadBlob(d: BlobDownload): Promise<void> {
  const part = `${d.dest}.incomplete`;
  mkdirSync(dirname(part), { recursive: true });
  let have = existsSync(part) ? statSync(part).size : 0;
  if (d.size !== null && have > d.size) {
    truncateSync(part, 0);
    have = 0;
  }
  const headers: Record<string, string> = { ...d.headers, 'accept-encoding': 'identity' };
  if (have > 0) headers.range = `bytes=${have}-`;
  // Authorization must not follow a redirect off the Hub (fetch drops it on cross-origin redirects).
  let res: Response;
  try {
    res = await fetch(d.url, { headers, redirect: 'follow' });
  } catch (e) {
    throw networkError(d.url, e);
  }
  if (res.status === 416 && have > 0 && d.size === have) {
    await res.body?.cancel();
  } else {
    if (res.status >= 400) {
      if (d.ctx) throw statusError(res, d.ctx);
      throw new HubError(res.status >= 500 ? 'SERVER' : 'HTTP', `HTTP ${res.status} for ${d.url}`, res.status);
    }
    if (have > 0 && res.status === 200) {
      truncateSync(part, 0);
      have = 0;
    } // the server ignored Range: start over
    const total =
      d.size ??
      (intOrNull(res.headers.get('content-length')) !== null
        ? have + intOrNull(res.headers.get('content-length'))!
        : null);
    const fh = await open(part, 'a');
    const bar = d.progress ? byteProgress(d.label, total, have) : null;
    let got = have;
    try {
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          await fh.write(chunk);
          got += chunk.length;
          bar?.update(got);
        }
      }
      await fh.sync();
    } catch (e) {
      throw new HubError(
        'TRUNCATED',
        `the download of ${d.label} broke off after ${got} bytes (${(e as Error).message}); ` +
          'run the command again to resume it',
      );
    } finally {
      await fh.close();
      bar?.end();
    }
  }
  const size = statSync(part).size;
  if (d.size !== null && size !== d.size) {
    throw new HubError(
      'TRUNCATED',
      `the download of ${d.label} ended at ${size} of ${d.size} bytes (the connection closed early); ` +
        'run the command again to resume it',
    );
  }
  const expected = d.etag !== null && SHA256.test(d.etag) ? d.etag : null;
  if (expected || d.sha256Prefix) {
    const got = await sha256Of(part);
    if ((expected && got !== expected) || (d.sha256Prefix && !got.startsWith(d.sha256Prefix))) {
      unlinkSync(part);
      throw new HubError(
        'HASH_MISMATCH',
        `${d.label}: sha256 of the downloaded file is ${got} but ${expected ?? `${d.sha256Prefix}...`} was expected; ` +
          'the partial file was deleted, run the command again (if it repeats, the server or a proxy corrupts the file)',
      );
    }
  }
  renameSync(part, d.dest);
}
