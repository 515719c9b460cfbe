// The OpenAPI 3.1 document served at /api/openapi.json, generated from the route table so it
// always lists exactly the routes that exist, with who may call them and the body they take.
import { z } from 'zod';
import { VERSION } from './api/daemon.js';
import type { RouteDefinition } from './route-definition.js';

const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string', description: 'what happened and what to do' } }, required: ['code', 'message'] } },
  required: ['error'],
};

function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, '{$1}');
}

/** As the caller sends it (`io: 'input'`): a field with a default is optional. */
function bodySchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io }) as Record<string, unknown>;
  return rest;
}

export function openApiDocument(routes: readonly RouteDefinition[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const pathNames = [...route.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);
    const params: Record<string, unknown>[] = pathNames.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
    if (route.action.query) {
      const schema = bodySchema(route.action.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, property] of Object.entries(schema.properties ?? {})) {
        if (!pathNames.includes(name)) params.push({ name, in: 'query', required: schema.required?.includes(name) ?? false, schema: property });
      }
    }
    const roles = route.access === 'public' ? 'anyone' : route.access.join(', ');
    const operation: Record<string, unknown> = {
      summary: route.summary,
      description: `Allowed: ${roles}.${route.sessionOnly ? ' Only from a console login, not with an API token.' : ''}${route.audit ? ` Written to the audit trail as \`${route.audit}\`.` : ''}${route.method !== 'get' ? ' With a session cookie, send the session\'s CSRF token in X-CSRF-Token.' : ''}`,
      'x-roles': route.access === 'public' ? [] : route.access,
      'x-effect': route.effect,
      security: route.access === 'public' ? [] : route.sessionOnly ? [{ session: [] }] : [{ session: [] }, { bearer: [] }],
      ...(params.length ? { parameters: params } : {}),
      ...(route.action.body ? { requestBody: { required: true, content: { 'application/json': { schema: bodySchema(route.action.body) } } } } : {}),
      responses: {
        '2XX': { description: 'success', content: { 'application/json': { schema: { type: 'object' } } } },
        default: { description: 'an error: 400 invalid request, 401 not logged in, 403 not allowed or no CSRF token, 404 not found, 409 conflict, 423 locked, 429 rate limited, 503 daemon not connected', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
    (paths[openApiPath(route.path)] ??= {})[route.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Haul console API', version: VERSION, description: 'The REST API the Haul web console uses itself. Log in with POST /api/login (session cookie + CSRF token), or send an API token as Authorization: Bearer haul_….' },
    paths,
    components: {
      schemas: { Error: errorSchema },
      securitySchemes: {
        session: { type: 'apiKey', in: 'cookie', name: 'haul_session' },
        bearer: { type: 'http', scheme: 'bearer', description: 'an API token (haul_…) created on the Account page' },
      },
    },
  };
}
