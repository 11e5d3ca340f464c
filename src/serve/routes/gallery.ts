// The gallery: GET /v1/gallery (open), and the admin writes POST/DELETE /v1/gallery/classes/:name,
// which a scoped hook guards with the bearer token before anything of the request is read.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { GalleryError, galleryClasses } from '../../gallery/format.js';
import type { ServeContext } from '../context.js';
import { ServeError } from '../errors.js';
import type { ServedGallery } from '../served-gallery.js';
import { answer, fields, NO_QUERY } from '../schema.js';

/** Refuses every request unless it carries the admin token (403 when the server has none). */
function adminAuth(token: string | undefined): (req: FastifyRequest) => Promise<void> {
  // Token digests have one length, so timingSafeEqual compares in constant time whatever is sent.
  const digest = (t: string): Buffer => createHash('sha256').update(t).digest();
  const expected = token ? digest(token) : null;
  return async (req) => {
    if (!expected)
      throw new ServeError(
        'FORBIDDEN',
        'gallery writes are off: start the server with --admin-token or GOODSREC_ADMIN_TOKEN',
      );
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), expected)) {
      throw new ServeError(
        'UNAUTHORIZED',
        m ? 'wrong admin token' : 'gallery writes need the header Authorization: Bearer <admin token>',
      );
    }
  };
}

function requireGallery(g: ServedGallery | undefined): ServedGallery {
  if (!g) throw new ServeError('NOT_FOUND', 'this server has no gallery (start it with --gallery GALLERY)');
  return g;
}

const CHANGE = { class: { type: 'string' }, photos: { type: 'integer' }, version: { type: 'integer' } };

const GALLERY_INFO = answer({
  version: { type: 'integer' },
  photos: { type: 'integer' },
  dim: { type: 'integer' },
  k: { type: 'integer' },
  threshold: { type: ['number', 'null'] },
  search: { enum: ['exact', 'approximate'] },
  vectors: { enum: ['f32', 'f16', 'i8'] },
  /** 'f32': the file keeps the f32 rows that re-rank search candidates (f16/i8 galleries); null: none. */
  refine: { type: ['string', 'null'], enum: ['f32', null] },
  model: { type: 'string' },
  classes: { type: 'array', items: answer({ class: { type: 'string' }, photos: { type: 'integer' } }) },
});

function galleryInfo(g: ServedGallery): object {
  const { gallery, version } = g.current;
  const counts = new Map<string, number>();
  for (const e of gallery.meta.entries) counts.set(e.class, (counts.get(e.class) ?? 0) + 1);
  return {
    version,
    photos: gallery.meta.entries.length,
    dim: gallery.meta.dim,
    k: gallery.meta.k,
    threshold: gallery.meta.threshold,
    search: g.searchKind,
    vectors: gallery.meta.vectors ?? 'f32',
    refine: gallery.meta.refine ?? null,
    model: gallery.meta.model.name,
    classes: galleryClasses(gallery).map((c) => ({ class: c, photos: counts.get(c)! })),
  };
}

/** A class name to enrol: what is left after trimming is 1-200 characters without control characters. */
const NEW_CLASS_NAME = {
  type: 'string',
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  pattern: /^\s*[^\s\u0000-\u001f](?:[^\u0000-\u001f]{0,198}[^\s\u0000-\u001f])?\s*$/.source,
  description: 'a class name of 1 to 200 characters (spaces at either end are dropped), without control characters',
};

export const galleryRoutes: FastifyPluginAsync<ServeContext> = async (app, ctx) => {
  app.get('/v1/gallery', { schema: { querystring: NO_QUERY, response: { 200: GALLERY_INFO } } }, async () =>
    galleryInfo(requireGallery(ctx.gallery)),
  );

  // The writes: a child scope, so its hook guards these routes only (reads stay open).
  await app.register(async (admin) => {
    const auth = adminAuth(ctx.adminToken);
    admin.addHook('onRequest', async (req) => {
      await auth(req);
      requireGallery(ctx.gallery);
    });

    // Enrol: the photos (multipart, or one image body) go through the same pre-processing and graph as predictions.
    admin.post<{ Params: { name: string } }>(
      '/v1/gallery/classes/:name',
      {
        schema: {
          params: fields({ name: NEW_CLASS_NAME }, ['name']),
          querystring: NO_QUERY,
          response: { 201: answer({ ...CHANGE, added: { type: 'integer' } }) },
        },
      },
      async (req, reply) => {
        const g = requireGallery(ctx.gallery);
        const name = req.params.name.trim();
        const { uploads, rows } = await ctx.inference.run(req);
        const snap = await g.enrol(
          name,
          uploads.map((u) => ({ class: name, path: `upload:${u.name}` })),
          ctx.inference.embeddings(rows),
        );
        ctx.metrics.images.inc({}, uploads.length);
        return reply.status(201).send({
          class: name,
          added: uploads.length,
          photos: snap.gallery.meta.entries.length,
          version: snap.version,
        });
      },
    );

    admin.delete<{ Params: { name: string } }>(
      '/v1/gallery/classes/:name',
      {
        schema: {
          params: fields({ name: { type: 'string', description: 'the name of a class in the gallery' } }, ['name']),
          querystring: NO_QUERY,
          response: { 200: answer({ ...CHANGE, removed: { type: 'integer' } }) },
        },
      },
      async (req) => {
        const g = requireGallery(ctx.gallery);
        try {
          const before = g.current.gallery.meta.entries.length;
          const snap = await g.remove(req.params.name);
          return {
            class: req.params.name,
            removed: before - snap.gallery.meta.entries.length,
            photos: snap.gallery.meta.entries.length,
            version: snap.version,
          };
        } catch (e) {
          if (e instanceof GalleryError) throw new ServeError('NOT_FOUND', e.message);
          throw e;
        }
      },
    );
  });
};
