// The gallery a server recognises through. Readers take the current snapshot
// (gallery + its index) and keep using it for their whole request; a write
// builds the next gallery, then a worker thread builds its index (an HNSW graph
// over a large gallery takes seconds to minutes) and writes the file
// atomically, and only then is the graph loaded and the reference swapped: the
// event loop keeps answering meanwhile, readers never see a half-built index
// nor a half-written gallery, and a failed write changes nothing. Writes are
// serialised.
import { Worker } from 'node:worker_threads';
import {
  GalleryError,
  appendToGallery,
  filterGallery,
  galleryClasses,
  withRefineFile,
  type Gallery,
  type GalleryEntry,
} from '../gallery/format.js';
import { GalleryMatcher } from '../gallery/recognize.js';
import { isApproximate, openGalleryIndex } from '../gallery/open-index.js';
import type { RefineFile } from '../gallery/refine.js';
import type { GalleryWriteJob, GalleryWriteReply } from './gallery-write-worker.js';
import type { ServedModel } from './model.js';

export interface GallerySnapshot {
  gallery: Gallery;
  matcher: GalleryMatcher;
  /** Increments with every write this server made. */
  version: number;
}

export class ServedGallery {
  private snap: GallerySnapshot;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    gallery: Gallery,
    private readonly log?: (m: string) => void,
  ) {
    this.snap = { gallery, matcher: this.matcher(gallery), version: 0 };
  }

  private matcher(g: Gallery, graph?: string): GalleryMatcher {
    const o = { path: this.path, ...(this.log ? { log: this.log } : {}), ...(graph ? { graph } : {}) };
    return new GalleryMatcher(g, openGalleryIndex(g, o));
  }

  /** What readers use; never changes under them. */
  get current(): GallerySnapshot {
    return this.snap;
  }

  get searchKind(): 'exact' | 'approximate' {
    return isApproximate(this.snap.gallery) ? 'approximate' : 'exact';
  }

  /** Appends photos of one class (embeddings: row-major unit rows). */
  enrol(_className: string, entries: readonly GalleryEntry[], embeddings: Float32Array): Promise<GallerySnapshot> {
    return this.write((g) => appendToGallery(g, entries, embeddings));
  }

  /** Removes every photo of a class; throws GalleryError when there is none. */
  remove(className: string): Promise<GallerySnapshot> {
    return this.write((g) => {
      if (!galleryClasses(g).includes(className)) throw new GalleryError(`the gallery has no class '${className}'`);
      return filterGallery(g, (e) => e.class !== className);
    });
  }

  /** Serialised copy-on-write: next = change(current); index and file made off the event loop; then the swap. */
  private write(change: (g: Gallery) => Gallery): Promise<GallerySnapshot> {
    const run = async (): Promise<GallerySnapshot> => {
      const changed = change(this.snap.gallery);
      const { graph, buildMs, refine } = await writeInWorker({ path: this.path, gallery: changed });
      // refine rows: the new gallery reads them from the file just written (pinned now), not from the old one
      const next = withRefineFile(changed, refine);
      const n = next.meta.entries.length;
      if (graph) this.log?.(`${this.path}: HNSW graph over ${n} photos built in ${(buildMs / 1000).toFixed(1)} s`);
      const matcher = this.matcher(next, graph ?? undefined); // loads the saved graph (no build on this thread)
      const old = this.snap;
      this.snap = { gallery: next, matcher, version: old.version + 1 };
      return this.snap;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }
}

/** Runs gallery-write-worker.ts on one job. */
function writeInWorker(
  job: GalleryWriteJob,
): Promise<{ graph: string | null; buildMs: number; refine: RefineFile | null }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./gallery-write-worker.js', import.meta.url), { workerData: job });
    let done = false;
    w.once('message', (m: GalleryWriteReply) => {
      done = true;
      if (m.ok) resolve({ graph: m.graph, buildMs: m.buildMs, refine: m.refine });
      else reject(new Error(`${job.path}: ${m.message}`));
    });
    w.once('error', (e) => {
      done = true;
      reject(new Error(`${job.path}: the gallery writer failed: ${e.message}`));
    });
    w.once('exit', (code) => {
      if (!done) reject(new Error(`${job.path}: the gallery writer exited (code ${code}) before answering`));
    });
  });
}

/** Throws unless the gallery was made by the weights the served graph came from, at its embedding width. */
export function checkGalleryFits(g: ServedGallery, model: ServedModel): void {
  const emb = model.sidecar.embedding;
  const meta = g.current.gallery.meta;
  if (!emb || model.embeddingDim === 0)
    throw new Error(`${model.onnxPath}: served without its embedding output; open it with { embedding: true }`);
  if (emb.weightsSha256 !== meta.model.hash) {
    throw new Error(
      `${g.path}: built with other weights (sha256 ${meta.model.hash.slice(0, 12)}…, ${meta.model.checkpoint}) than the served graph ` +
        `(${emb.weightsSha256.slice(0, 12)}…, ${model.sidecar.source.checkpoint}); rebuild the gallery with goodsrec gallery build`,
    );
  }
  if (meta.dim !== model.embeddingDim)
    throw new Error(`${g.path}: ${meta.dim}-d embeddings, the graph gives ${model.embeddingDim}`);
}
