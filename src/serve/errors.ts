// The server's error catalogue (fastify's createError habit): every error a
// client can get is defined once, with its stable code and HTTP status, and
// answered as {error: {code, message}}.

export const SERVE_ERRORS = {
  EMPTY_BODY: { status: 400, doc: 'The request has no image bytes.' },
  BAD_REQUEST: { status: 400, doc: 'A query parameter or form field is invalid, or the multipart body is malformed.' },
  UNAUTHORIZED: { status: 401, doc: 'A gallery write without the admin bearer token, or with a wrong one.' },
  FORBIDDEN: { status: 403, doc: 'Gallery writes are off (the server has no --admin-token).' },
  NOT_FOUND: { status: 404, doc: 'No such route, file or gallery class.' },
  REQUEST_TIMEOUT: { status: 408, doc: 'The request body did not arrive in time.' },
  BODY_TOO_LARGE: { status: 413, doc: 'The body (or one uploaded file) is over the byte limit.' },
  TOO_MANY_IMAGES: { status: 413, doc: 'More images in one request than the server accepts.' },
  TOO_MANY_PIXELS: { status: 413, doc: 'The image has more pixels than the limit (decompression-bomb guard).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'The content type is neither image/* nor multipart/form-data.' },
  NOT_AN_IMAGE: { status: 422, doc: 'The bytes are not an image format the decoder knows.' },
  TRUNCATED_IMAGE: { status: 422, doc: 'The image data ends early.' },
  CORRUPT_IMAGE: { status: 422, doc: 'The image could not be decoded.' },
  QUEUE_FULL: { status: 503, doc: 'Too many images are waiting for inference; retry later.' },
  INFERENCE_TIMEOUT: { status: 503, doc: 'The prediction did not finish within the request timeout.' },
  SHUTTING_DOWN: { status: 503, doc: 'The server is draining before shutdown.' },
  INTERNAL: { status: 500, doc: 'An unexpected server error (logged).' },
} as const satisfies Record<string, { status: number; doc: string }>;

export type ServeErrorCode = keyof typeof SERVE_ERRORS;

export class ServeError extends Error {
  readonly code: ServeErrorCode;
  readonly statusCode: number;
  constructor(code: ServeErrorCode, message: string) {
    super(message);
    this.name = 'ServeError';
    this.code = code;
    this.statusCode = SERVE_ERRORS[code].status;
  }
}

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: { code: ServeErrorCode; message: string };
}

export function errorBody(e: ServeError): ErrorBody {
  return { error: { code: e.code, message: e.message } };
}

/** Maps fastify's and @fastify/multipart's own errors onto the catalogue. */
export function fromFrameworkError(
  e: { code?: string; statusCode?: number; message: string },
  limits: { bodyBytes: number; images: number },
): ServeError {
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ServeError('BODY_TOO_LARGE', `the body is over the limit of ${limits.bodyBytes} bytes`);
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
      return new ServeError('TOO_MANY_IMAGES', `at most ${limits.images} images per request`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ServeError(
        'UNSUPPORTED_MEDIA_TYPE',
        `${e.message} (send an image with Content-Type image/*, or multipart/form-data with image files)`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ServeError('EMPTY_BODY', 'the request has no image bytes');
    case 'FST_ERR_NOT_FOUND':
      return new ServeError('NOT_FOUND', e.message);
    default:
      if (e.statusCode === 408) return new ServeError('REQUEST_TIMEOUT', e.message);
      if (e.statusCode === 413) return new ServeError('BODY_TOO_LARGE', e.message);
      if (e.statusCode === 415) return new ServeError('UNSUPPORTED_MEDIA_TYPE', e.message);
      if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
        return new ServeError('BAD_REQUEST', e.message);
      return new ServeError('INTERNAL', 'internal server error');
  }
}
