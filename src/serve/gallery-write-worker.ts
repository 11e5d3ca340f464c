// One gallery write off the server's event loop: builds (and saves next to the gallery) the index the
// new gallery needs, then writes the gallery file atomically. The server loads the saved graph and
// swaps its snapshot only after this has succeeded (served-gallery.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { reviveGallery, storedRowsOf, writeGallery, type Gallery } from '../gallery/format.js';
import { closeRefineFiles, type RefineFile } from '../gallery/refine.js';
import { hnswPathFor } from '../gallery/hnsw-index.js';
import { isApproximate, openGalleryIndex } from '../gallery/open-index.js';

export interface GalleryWriteJob {
  path: string;
  gallery: Gallery;
}
export type GalleryWriteReply =
  /** refine: the written file's f32 refine rows (identity and place), for the server to bind the new gallery to. */
  { ok: true; graph: string | null; buildMs: number; refine: RefineFile | null } | { ok: false; message: string };

const job = workerData as GalleryWriteJob;
const path = job.path;
const gallery = reviveGallery(job.gallery); // structured clone drops an f16/i8 gallery's lazy embeddings
try {
  const t0 = performance.now();
  const approximate = isApproximate(gallery);
  if (approximate) openGalleryIndex(gallery, { path }); // built and saved under hnswPathFor
  const buildMs = performance.now() - t0;
  // refine rows of the old file are read before the rename; pin false: this thread keeps no fd open
  const written = writeGallery(path, gallery, { pin: false });
  const graph = approximate ? hnswPathFor(path, storedRowsOf(gallery)) : null;
  const reply: GalleryWriteReply = { ok: true, graph, buildMs, refine: written.refine?.file ?? null };
  parentPort!.postMessage(reply);
} catch (e) {
  parentPort!.postMessage({ ok: false, message: (e as Error).message } satisfies GalleryWriteReply);
} finally {
  closeRefineFiles(); // fds a worker opened outlive it (they are the process's): none should be left, close any
}
