// A loopback Hugging Face Hub for tests: timm-format model repos served with the
// Hub's headers (X-Repo-Commit, ETag, X-Linked-Etag/-Size, X-Error-Code), LFS files
// redirected to a "CDN" on another loopback host (127.0.0.2) with Range support,
// relative redirects for renamed repos, private repos, and injectable faults.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';

export interface FakeRepo {
  commit: string;
  files: Map<string, Buffer>;
  token?: string;
}
export interface Faults {
  /** Paths (as requested) that answer 503. */
  unavailable: Set<string>;
  /** CDN: the next GET of this sha stops after this many bytes. */
  truncateNext: Map<string, number>;
  /** CDN: serve this sha with one byte changed. */
  corrupt: Set<string>;
  /** CDN: ms to wait between 64 KiB chunks. */
  chunkDelayMs: number;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitSha = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const isLfs = (file: string): boolean => /\.(safetensors|bin|pth)$/.test(file);

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly renamed = new Map<string, string>();
  /** Plain files on the CDN host by path (torchvision's download server). */
  readonly files = new Map<string, Buffer>();
  readonly faults: Faults = { unavailable: new Set(), truncateNext: new Map(), corrupt: new Set(), chunkDelayMs: 0 };
  /** Every request: method, host, path, headers. */
  readonly log: { method: string; host: string; path: string; headers: IncomingMessage['headers'] }[] = [];
  private hub!: Server;
  private cdn!: Server;
  endpoint = '';
  cdnBase = '';

  addRepo(repo: string, files: Record<string, Buffer>, token?: string): FakeRepo {
    const commit = createHash('sha1')
      .update(repo + Object.keys(files).join())
      .digest('hex');
    const r: FakeRepo = { commit, files: new Map(Object.entries(files)), ...(token ? { token } : {}) };
    this.repos.set(repo, r);
    return r;
  }

  /** GETs the CDN served for a blob. */
  cdnGets(sha: string): IncomingMessage['headers'][] {
    return this.log.filter((l) => l.method === 'GET' && l.path === `/cdn/${sha}`).map((l) => l.headers);
  }

  async start(): Promise<void> {
    this.hub = createServer((q, s) => {
      void this.onHub(q, s);
    });
    this.cdn = createServer((q, s) => {
      void this.onCdn(q, s);
    });
    await new Promise<void>((r) => this.hub.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => this.cdn.listen(0, '127.0.0.2', r));
    this.endpoint = `http://127.0.0.1:${(this.hub.address() as { port: number }).port}`;
    this.cdnBase = `http://127.0.0.2:${(this.cdn.address() as { port: number }).port}`;
  }

  async stop(): Promise<void> {
    this.hub.closeAllConnections();
    this.cdn.closeAllConnections();
    await Promise.all([new Promise((r) => this.hub.close(r)), new Promise((r) => this.cdn.close(r))]);
  }

  private record(q: IncomingMessage, host: string): void {
    this.log.push({ method: q.method ?? '', host, path: decodeURIComponent(q.url ?? ''), headers: q.headers });
  }

  private async onHub(q: IncomingMessage, s: ServerResponse): Promise<void> {
    this.record(q, 'hub');
    const path = decodeURIComponent(q.url ?? '');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m) {
      s.writeHead(404).end();
      return;
    }
    const [, repoId, rev, file] = m as unknown as [string, string, string, string];
    if (this.faults.unavailable.has(path)) {
      s.writeHead(503, { 'x-error-message': 'unavailable' }).end();
      return;
    }
    const to = this.renamed.get(repoId);
    if (to) {
      s.writeHead(307, { location: `/${to}/resolve/${encodeURIComponent(rev)}/${file}` }).end();
      return;
    }
    const repo = this.repos.get(repoId);
    if (!repo || (repo.token && q.headers.authorization !== `Bearer ${repo.token}`)) {
      s.writeHead(401, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' }).end();
      return;
    }
    if (rev !== 'main' && rev !== repo.commit) {
      s.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end();
      return;
    }
    const body = repo.files.get(file);
    if (!body) {
      s.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': repo.commit }).end();
      return;
    }
    const common = { 'x-repo-commit': repo.commit, etag: `"${gitSha(body)}"` };
    if (isLfs(file)) {
      const sha = sha256(body);
      s.writeHead(302, {
        ...common,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(body.length),
        location: `${this.cdnBase}/cdn/${sha}`,
      }).end();
      return;
    }
    s.writeHead(200, { ...common, 'content-length': String(body.length) });
    s.end(q.method === 'HEAD' ? undefined : body);
  }

  private blob(sha: string): Buffer | undefined {
    for (const r of this.repos.values()) for (const b of r.files.values()) if (sha256(b) === sha) return b;
    return undefined;
  }

  private async onCdn(q: IncomingMessage, s: ServerResponse): Promise<void> {
    this.record(q, 'cdn');
    const sha = (q.url ?? '').replace(/^\/cdn\//, '');
    let body = this.files.get(q.url ?? '') ?? this.blob(sha);
    if (!body) {
      s.writeHead(404).end();
      return;
    }
    if (this.faults.corrupt.has(sha)) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(q.headers.range ?? '');
    if (range) start = Number(range[1]);
    if (start >= body.length && range) {
      s.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    const part = body.subarray(start);
    s.writeHead(range ? 206 : 200, {
      'content-length': String(part.length),
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (q.method === 'HEAD') {
      s.end();
      return;
    }
    const cut = this.faults.truncateNext.get(sha);
    if (cut !== undefined) this.faults.truncateNext.delete(sha);
    const limit = cut ?? part.length;
    for (let i = 0; i < limit; i += 65536) {
      await new Promise((r) => s.write(part.subarray(i, Math.min(limit, i + 65536)), r));
      if (this.faults.chunkDelayMs) await new Promise((r) => setTimeout(r, this.faults.chunkDelayMs));
    }
    if (cut !== undefined) {
      s.destroy();
      return;
    }
    s.end();
  }
}

export { sha256 };
