// The gallery a server recognises through. Readers take the current snapshot
// (gallery + its index) and keep using it for their whole request; a write
// builds the next gallery and index in memory, writes the file atomically and
// only then swaps the reference, so readers never see a half-written gallery
// and a failed write changes nothing. Writes are serialised.
import { GalleryError, appendToGallery, filterGallery, galleryClasses, writeGallery, type Gallery, type GalleryEntry } from '../gallery/format.js';
import { GalleryMatcher } from '../gallery/recognize.js';
import { isApproximate, openGalleryIndex } from '../gallery/open-index.js';

export interface GallerySnapshot {
  gallery: Gallery;
  matcher: GalleryMatcher;
  /** Increments with every write this server made. */
  version: number;
}

export class ServedGallery {
  private snap: GallerySnapshot;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string, gallery: Gallery, private readonly log?: (m: string) => void) {
    this.snap = { gallery, matcher: this.matcher(gallery), version: 0 };
  }

  private matcher(g: Gallery): GalleryMatcher {
    return new GalleryMatcher(g, openGalleryIndex(g, { path: this.path, ...(this.log ? { log: this.log } : {}) }));
  }

  /** What readers use; never changes under them. */
  get current(): GallerySnapshot { return this.snap; }

  get searchKind(): 'exact' | 'approximate' { return isApproximate(this.snap.gallery) ? 'approximate' : 'exact'; }

  /** Appends photos of one class (embeddings: row-major unit rows). */
  enrol(className: string, entries: readonly GalleryEntry[], embeddings: Float32Array): Promise<GallerySnapshot> {
    return this.write((g) => appendToGallery(g, entries, embeddings));
  }

  /** Removes every photo of a class; throws GalleryError when there is none. */
  remove(className: string): Promise<GallerySnapshot> {
    return this.write((g) => {
      if (!galleryClasses(g).includes(className)) throw new GalleryError(`the gallery has no class '${className}'`);
      return filterGallery(g, (e) => e.class !== className);
    });
  }

  /** Serialised copy-on-write: next = change(current); file written atomically; then the swap. */
  private write(change: (g: Gallery) => Gallery): Promise<GallerySnapshot> {
    const run = async (): Promise<GallerySnapshot> => {
      const next = change(this.snap.gallery);
      const matcher = this.matcher(next); // builds or loads the HNSW graph when the gallery is large
      writeGallery(this.path, next);
      const old = this.snap;
      this.snap = { gallery: next, matcher, version: old.version + 1 };
      return this.snap;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }
}
