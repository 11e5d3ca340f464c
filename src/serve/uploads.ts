// The images of one request: a raw image body (Content-Type image/*), or the files of a
// multipart/form-data body. Limits are enforced while reading, so an over-limit file is refused
// as soon as it passes the limit, not after it has been read.
import type { FastifyRequest } from 'fastify';
import { ServeError } from './errors.js';

export interface Upload {
  /** The multipart file name, or `image` / `image-<n>` when none was given. */
  name: string;
  bytes: Buffer;
}

export async function readUploads(req: FastifyRequest, maxBodyBytes: number): Promise<Upload[]> {
  if (req.isMultipart()) {
    const out: Upload[] = [];
    try {
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        const bytes = await partBytes(part.file, maxBodyBytes);
        out.push({ name: part.filename || `image-${out.length + 1}`, bytes });
      }
    } catch (e) {
      // busboy's parse errors carry no code ("Boundary not found", "Unexpected end of multipart data").
      if (e instanceof ServeError || (e as { code?: unknown }).code !== undefined) throw e;
      throw new ServeError('BAD_REQUEST', `malformed multipart body: ${(e as Error).message}`);
    }
    if (out.length === 0) throw new ServeError('EMPTY_BODY', 'the multipart body has no image file');
    return out;
  }
  const body = req.body;
  if (Buffer.isBuffer(body)) {
    if (body.length === 0) throw new ServeError('EMPTY_BODY', 'the request body is empty');
    return [{ name: 'image', bytes: body }];
  }
  if (!req.headers['content-type']) {
    throw new ServeError(
      Number(req.headers['content-length'] ?? 0) > 0 ? 'UNSUPPORTED_MEDIA_TYPE' : 'EMPTY_BODY',
      'send an image with Content-Type image/*, or multipart/form-data with image files',
    );
  }
  throw new ServeError('EMPTY_BODY', 'the request body is empty');
}

/** A file part's bytes; fails as soon as it passes the limit (toBuffer would read on to the part's end). */
function partBytes(file: NodeJS.ReadableStream & { destroy(): void }, maxBytes: number): Promise<Buffer> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    file.on('data', (c: Buffer) => chunks.push(c));
    file.once('limit', () => {
      file.destroy();
      rej(new ServeError('BODY_TOO_LARGE', `an uploaded file is over the limit of ${maxBytes} bytes`));
    });
    file.once('end', () => res(Buffer.concat(chunks)));
    file.once('error', rej);
  });
}
