// The browser page (GET /), its own files (/web), the compiled modules it shares with the server
// (/lib) and onnxruntime-web's files (/ort): self-contained, no CDN.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { packageRoot } from '../../util/version.js';
import { ServeError } from '../errors.js';
import { sendFile } from '../files.js';
import { compiledSrcDir, pageModules } from '../web-modules.js';
import { fields, fileAnswer, NO_QUERY, notFound } from '../schema.js';

/** The browser page's files (src/serve/web: tsc does not copy them, so they are read from the source tree). */
function webDir(): string {
  return join(packageRoot(), 'src', 'serve', 'web');
}

/** onnxruntime-web's dist folder, for in-browser inference. */
function ortWebDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('onnxruntime-web'));
}

const noFile = (name: string): string => `no file ${name}`;
/** A file name path parameter: refused names answer 404 like missing files. */
const fileParam = (pattern: RegExp, description: string): object => ({
  type: 'string',
  pattern: pattern.source,
  description,
});

export const staticRoutes: FastifyPluginAsync = async (app) => {
  app.get('/', { schema: { querystring: NO_QUERY, response: fileAnswer('the web page') } }, async (_req, reply) =>
    sendFile(reply, webDir(), 'index.html'),
  );

  app.get<{ Params: { file: string } }>(
    '/web/:file',
    {
      schema: {
        params: fields({ file: fileParam(/^[\w-]+\.(js|css)$/, "one of the page's .js or .css files") }, ['file']),
        querystring: NO_QUERY,
        response: fileAnswer("the page's script or style sheet"),
      },
      schemaErrorFormatter: notFound(noFile),
    },
    async (req, reply) => sendFile(reply, webDir(), req.params.file),
  );

  // Compiled modules the page imports: web-preprocess.js and its module graph (web-modules.ts), no Node imports.
  app.get<{ Params: { '*': string } }>(
    '/lib/*',
    {
      schema: {
        params: fields(
          {
            '*': fileParam(
              /^[\w-]+(\/[\w-]+)*\.js$/,
              'a compiled module the page imports (its path under the compiled src/)',
            ),
          },
          ['*'],
        ),
        querystring: NO_QUERY,
        response: fileAnswer('a compiled module of the server the page runs (its pre-processing)'),
      },
      schemaErrorFormatter: notFound(noFile),
    },
    async (req, reply) => {
      const name = req.params['*'];
      if (!pageModules().has(name)) throw new ServeError('NOT_FOUND', noFile(name));
      return sendFile(reply, compiledSrcDir(), name);
    },
  );

  app.get<{ Params: { file: string } }>(
    '/ort/:file',
    {
      schema: {
        params: fields({ file: fileParam(/^ort[\w.-]*\.(mjs|wasm)$/, "onnxruntime-web's .mjs or .wasm") }, ['file']),
        querystring: NO_QUERY,
        response: fileAnswer("onnxruntime-web's module or WebAssembly"),
      },
      schemaErrorFormatter: notFound(noFile),
    },
    async (req, reply) => sendFile(reply, ortWebDir(), req.params.file),
  );
};
