// A gallery over given unit rows with a stand-in model (no weights behind it): for tests and benches of the
// gallery file and its indexes, which never embed a photo.
import { GALLERY_FORMAT, type Gallery, type GalleryEntry } from '../../src/gallery/format.js';

/** rows: row-major [n, d]; entry(i) names row i (default: 7 classes in turn, one photo path per row). */
export function standInGallery(
  rows: Float32Array,
  d: number,
  entry: (i: number) => GalleryEntry = (i) => ({ class: `c${i % 7}`, path: `/photos/${i}.jpg` }),
): Gallery {
  return {
    meta: {
      format: GALLERY_FORMAT,
      model: {
        hash: 'f'.repeat(64),
        checkpoint: '/nowhere',
        name: 'stand-in',
        embedding: 'pooled',
        preprocess: {} as Gallery['meta']['model']['preprocess'],
      },
      dim: d,
      entries: Array.from({ length: rows.length / d }, (_, i) => entry(i)),
      k: 5,
      threshold: null,
    },
    embeddings: rows,
  };
}
