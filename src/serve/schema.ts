// Route schemas and what their failures answer. Every route declares its inputs (path parameters,
// query string) and its JSON answer as JSON Schema; a request that fails its schema gets a ServeError
// naming the field, the value sent and what is accepted (each property's `description` says that).
// fastify's validator (ajv) coerces query and path strings to the declared types and drops query
// parameters a route does not declare.
import type { FastifySchemaValidationError, RouteShorthandOptions } from 'fastify';
import { ServeError } from './errors.js';

/** ajv options for the server: `verbose` gives each error the value and the schema that refused it. */
export const AJV_OPTIONS = { verbose: true } as const;

export type SchemaErrorFormatter = NonNullable<RouteShorthandOptions['schemaErrorFormatter']>;

const PLACE: Record<string, string> = {
  querystring: 'query parameter',
  params: 'path parameter',
  headers: 'header',
  body: 'body field',
};

interface VerboseError extends FastifySchemaValidationError {
  data?: unknown;
  parentSchema?: { description?: string };
}

/** The refused field and value of ajv's first error (the validator stops at the first). */
function refused(errors: FastifySchemaValidationError[]): { field: string; value: unknown; e: VerboseError } {
  const e = errors[0] as VerboseError;
  const missing = (e.params as { missingProperty?: string }).missingProperty;
  const field = missing ?? e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  return { field, value: e.data, e };
}

/**
 * 400 BAD_REQUEST: "query parameter 'top' = 0: must be >= 1; expected an integer from 1 to 5 (...)".
 * A pattern's regular expression is not repeated: the description says it in words.
 */
export const badRequest: SchemaErrorFormatter = (errors, dataVar) => {
  const { field, value, e } = refused(errors);
  const where = `${PLACE[dataVar] ?? dataVar} '${field}'`;
  if (e.keyword === 'required') return new ServeError('BAD_REQUEST', `${where} is missing`);
  const problem = e.keyword === 'pattern' ? 'not accepted' : (e.message ?? 'not accepted');
  const accepted = e.parentSchema?.description ? `; expected ${e.parentSchema.description}` : '';
  return new ServeError('BAD_REQUEST', `${where} = ${JSON.stringify(value)}: ${problem}${accepted}`);
};

/** For routes where a refused path parameter means "no such thing" (files, classes by index): 404. */
export function notFound(message: (value: string) => string): SchemaErrorFormatter {
  return (errors) => new ServeError('NOT_FOUND', message(String(refused(errors).value)));
}

/** Path or query parameters: these properties, no others. */
export function fields(properties: Record<string, object>, required: readonly string[] = []): object {
  return { type: 'object', properties, required, additionalProperties: false };
}

/**
 * A JSON answer object: these properties, each required unless listed as optional. Properties not
 * listed are not sent (the serializer writes only what the schema names).
 */
export function answer(properties: Record<string, object>, optional: readonly string[] = []): object {
  return { type: 'object', properties, required: Object.keys(properties).filter((k) => !optional.includes(k)) };
}

/** A route without inputs: its query string is ignored (undeclared query parameters are dropped). */
export const NO_QUERY = fields({});

/** A non-JSON answer (a file, Prometheus text): documentation only, the bytes are sent as they are. */
export function fileAnswer(description: string): object {
  return { 200: { description, type: 'string' } };
}
