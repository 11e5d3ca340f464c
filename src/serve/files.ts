// Files the server sends as they are (the page, onnxruntime-web, reference photos, the graph).
import { existsSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyReply } from 'fastify';
import { ServeError } from './errors.js';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
};

/** The content type for a file name, by its extension. */
export function contentType(file: string): string {
  return MIME[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Sends dir/name, or answers NOT_FOUND "no file <name>". */
export function sendFile(reply: FastifyReply, dir: string, name: string): FastifyReply {
  const file = join(dir, name);
  if (!existsSync(file)) throw new ServeError('NOT_FOUND', `no file ${name}`);
  return reply.type(contentType(name)).send(readFileSync(file));
}
