// The HTTP API's OpenAPI 3.1 document, served at /api/openapi.json. Written by hand next to the routes
// (api.ts); test/http/dashboard-api.test.ts checks that every route is documented and every documented
// path answers.
const json = (schema: object = { type: 'object' }) => ({ content: { 'application/json': { schema } } });
const ok = (description: string, schema?: object) => ({ 200: { description, ...json(schema) } });
const refusals = {
  400: { description: 'Bad input or a refused state change (error, hint)', ...json({ $ref: '#/components/schemas/Error' }) },
  401: { description: 'No token or a wrong one: nothing changed', ...json({ $ref: '#/components/schemas/Error' }) },
  403: { description: 'Viewer token, or the X-HCSync-CSRF header missing, or another origin: nothing changed', ...json({ $ref: '#/components/schemas/Error' }) },
};
const objectParam = { name: 'object', in: 'path', required: true, schema: { type: 'string' }, description: 'Salesforce object API name, e.g. Account' };
const hoursParam = { name: 'hours', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 2160, default: 24 } };
const get = (summary: string, sql: string, extra: object = {}) => ({ get: { summary, description: `SQL: ${sql}`, responses: { ...ok(summary), ...refusals }, ...extra } });
const post = (summary: string, sql: string, extra: object = {}) => ({
  post: { summary, description: `SQL: ${sql}. Needs the admin token and the X-HCSync-CSRF: 1 header; audited with the token's principal.`, responses: { ...ok(summary), ...refusals }, ...extra },
});
const pick = {
  requestBody: {
    required: true,
    ...json({
      type: 'object',
      additionalProperties: false,
      properties: { ids: { type: 'array', items: { type: 'integer' } }, table: { type: 'string' }, all: { const: true } },
      description: 'ids (trigger-log ids), or table (table or object name), or all: true',
    }),
  },
};

export const openapi = {
  openapi: '3.1.0',
  info: {
    title: 'hcsync dashboard API',
    version: '1',
    description:
      'The JSON API the hcsync dashboard uses. Every request needs a token: Authorization: Bearer <token>, or the hcsync_token cookie the dashboard sets. Admin tokens may change things; viewer tokens may only read. Requests other than GET need the header X-HCSync-CSRF: 1.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, cookie: { type: 'apiKey', in: 'cookie', name: 'hcsync_token' } },
    schemas: { Error: { type: 'object', properties: { error: { type: 'string' }, hint: { type: 'string' } }, required: ['error'] } },
  },
  security: [{ bearer: [] }, { cookie: [] }],
  paths: {
    '/api/openapi.json': get('This document', 'none'),
    '/api/whoami': get("The token's role and principal", 'none'),
    '/api/connection': get('The connection: state, message, counts and details (Connect API: connections)', 'select * from hc.status'),
    '/api/connection/pause': post('Pause the sync', 'hc.pause(connection)'),
    '/api/connection/resume': post('Resume the sync', 'hc.resume(connection)'),
    '/api/connection/recover': post('Recover the connection from an error state', 'hc.recover(connection)'),
    '/api/mappings': get('Every mapping with its counts (Connect API: mappings)', 'select * from hc.mappings'),
    '/api/mappings/{object}': get('One mapping with its fields', 'hc.dashboard_mapping(object, connection)', { parameters: [objectParam] }),
    '/api/mappings/{object}/reload': post('Reload the mapping from Salesforce', 'hc.reload(object, connection)', { parameters: [objectParam] }),
    '/api/mappings/{object}/poll': post('Poll Salesforce now', 'hc.poll_now(object, connection)', { parameters: [objectParam] }),
    '/api/mappings/{object}/abort': post('Abort a load or reload', 'hc.abort(object, connection)', { parameters: [objectParam] }),
    '/api/activity': get('Rows and errors per time bucket, both directions', 'hc.dashboard_activity(hours, object, connection)', {
      parameters: [hoursParam, { name: 'object', in: 'query', schema: { type: 'string' } }],
    }),
    '/api/api-usage': get('Salesforce API calls per time bucket (hc.api_calls) and the org allowance', 'hc.dashboard_api_usage(hours, connection)', { parameters: [hoursParam] }),
    '/api/write-errors': get('Failed writes with their Salesforce message', 'select * from hc.write_errors', {
      parameters: [{ name: 'table', in: 'query', schema: { type: 'string' } }],
    }),
    '/api/write-errors/retry': post('Retry failed writes', 'hc.retry(ids, table, connection)', pick),
    '/api/write-errors/discard': post('Discard failed writes (IGNORED)', 'hc.discard(ids, table, connection)', pick),
    '/api/logs': get('The sync log, newest first', 'select … from hc.sync_log', {
      parameters: ['object', 'level', 'direction', 'event', 'before', 'limit'].map((name) => ({ name, in: 'query', schema: { type: ['before', 'limit'].includes(name) ? 'integer' : 'string' } })),
    }),
    '/api/audit': get('The audit trail (latest 500)', 'select … from hc.audit_log'),
    '/api/audit.csv': { get: { summary: 'The audit trail as CSV', description: 'SQL: select … from hc.audit_log', responses: { 200: { description: 'CSV', content: { 'text/csv': {} } }, ...refusals } } },
    '/api/export': get('The mapping JSON (Heroku Connect export format v1)', 'hc.export_config(connection)', {
      parameters: [{ name: 'download', in: 'query', schema: { type: 'string' }, description: 'any value: served as an attachment' }],
    }),
    '/api/import': post('Import a mapping JSON file (created, updated, unchanged)', 'hc.import_config(config, connection)', {
      requestBody: { required: true, ...json({ type: 'object', required: ['mappings'] }) },
    }),
    '/api/events': { get: { summary: 'Server-sent events: `nudge` with {kind: control|writes|activity} when something changed', responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': {} } }, ...refusals } } },
  },
};
