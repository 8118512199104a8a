// The HTTP API's OpenAPI 3.1 document, served at /api/openapi.json. Written by hand next to the routes
// (api.ts); test/http/routes.test.ts checks that the server's routes and this document's paths are the
// same, method by method.
const json = (schema: object = { type: 'object' }) => ({ content: { 'application/json': { schema } } });
const ok = (description: string, schema?: object) => ({ 200: { description, ...json(schema) } });
const refusals = {
  400: { description: 'Bad input or a refused state change (error, hint)', ...json({ $ref: '#/components/schemas/Error' }) },
  401: { description: 'No token or a wrong one: nothing changed', ...json({ $ref: '#/components/schemas/Error' }) },
  403: { description: 'Viewer token, or the X-HCSync-CSRF header missing, or another origin: nothing changed', ...json({ $ref: '#/components/schemas/Error' }) },
};
const objectParam = { name: 'object', in: 'path', required: true, schema: { type: 'string' }, description: 'Salesforce object API name, e.g. Account' };
const objectQuery = () => ({ name: 'object', in: 'query', schema: { type: 'string' }, description: 'only this mapping (object API name)' });
const hoursParam = { name: 'hours', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 2160, default: 24 } };
const get = (summary: string, sql: string, extra: object = {}) => ({ get: { summary, description: `SQL: ${sql}`, responses: { ...ok(summary), ...refusals }, ...extra } });
const post = (summary: string, sql: string, extra: object = {}) => ({
  post: { summary, description: `SQL: ${sql}. Needs the admin token and the X-HCSync-CSRF: 1 header; audited with the token's principal.`, responses: { ...ok(summary), ...refusals }, ...extra },
});
const put = (summary: string, sql: string, extra: object = {}) => ({ put: post(summary, sql, extra).post });
const del = (summary: string, sql: string, extra: object = {}) => ({ delete: post(summary, sql, extra).post });
const pick = {
  requestBody: {
    required: true,
    ...json({
      type: 'object',
      additionalProperties: false,
      properties: {
        ids: { type: 'array', items: { type: 'integer' } },
        table: { type: 'string', description: 'table or object name' },
        match: { type: 'string', description: "text the Salesforce message contains (any case); with table, within that mapping" },
        all: { const: true },
      },
      description: 'Which failed writes: ids (trigger-log ids); or all that match a filter: table and/or match, as GET /api/write-errors lists them; or all: true. ids and match exclude each other.',
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
    '/api/connection': get('The connection: state, message, counts and details: org id, user, instance URL, API version, schema (Connect API: connections)', 'hc.status'),
    '/api/validations': get("The database's checks (Connect API: validations): errors (RED), warnings (YELLOW), passes (GREEN), skips, and each check, RED first", 'hc.diagnose()'),
    '/api/connection/pause': post('Pause the sync', 'hc.pause(connection)'),
    '/api/connection/resume': post('Resume the sync', 'hc.resume(connection)'),
    '/api/connection/recover': post('Recover the connection from an error state', 'hc.recover(connection)'),
    '/api/mappings': {
      ...get('Every mapping with its counts (Connect API: mappings)', 'hc.mappings'),
      ...post("Create a mapping (Heroku Connect's mapping config); the sidecar describes the object, creates the table and loads it", 'hc.create_mapping(object_name, config, null, connection)', {
        requestBody: { required: true, ...json({ type: 'object', required: ['object_name', 'config'], properties: { object_name: { type: 'string' }, config: { type: 'object' } } }) },
      }),
    },
    '/api/mappings/{object}': {
      ...get('One mapping with its fields', 'hc.dashboard_mapping(object, connection)', { parameters: [objectParam] }),
      ...put('Change the mapping (its whole config); the sidecar alters the table and keeps its rows', 'hc.update_mapping(object, config, null, connection)', {
        parameters: [objectParam], requestBody: { required: true, ...json({ type: 'object', required: ['config'], properties: { config: { type: 'object' } } }) },
      }),
      ...del('Delete the mapping; its table is dropped unless keep_table=true', 'hc.delete_mapping(object, connection, drop_table)', {
        parameters: [objectParam, { name: 'keep_table', in: 'query', schema: { enum: ['true', 'false'] } }],
      }),
    },
    '/api/mappings/{object}/reload': post('Reload the mapping from Salesforce', 'hc.reload(object, connection)', { parameters: [objectParam] }),
    '/api/mappings/{object}/poll': post('Poll Salesforce now', 'hc.poll_now(object, connection)', { parameters: [objectParam] }),
    '/api/mappings/{object}/abort': post('Abort a load or reload', 'hc.abort(object, connection)', { parameters: [objectParam] }),
    '/api/activity': get('Rows and errors per time bucket, both directions', 'hc.dashboard_activity(hours, object, connection)', {
      parameters: [hoursParam, { name: 'object', in: 'query', schema: { type: 'string' } }],
    }),
    '/api/api-usage': get('Salesforce API calls per time bucket (hc.api_calls) and the org allowance', 'hc.dashboard_api_usage(hours, connection)', { parameters: [hoursParam] }),
    '/api/api-budget': get("The org's API use against its daily allowance as Salesforce last reported it, hcsync's own calls of the last 24 hours and hour, the day's forecast, and the budget governor's level (normal, slow, paused) with its thresholds", 'hc.api_budget'),
    '/api/write-errors': get('Failed writes with their Salesforce message, by mapping and message text', 'hc.write_errors', {
      parameters: [{ name: 'table', in: 'query', schema: { type: 'string' }, description: 'table or object name' },
        { name: 'q', in: 'query', schema: { type: 'string' }, description: 'text the Salesforce message contains (any case)' }],
    }),
    '/api/write-errors/retry': post('Retry failed writes: by id, or all that match a filter, or all', 'hc.retry(ids, table, connection); with match, the ids of hc.write_errors that match', pick),
    '/api/write-errors/discard': post('Discard failed writes (IGNORED): by id, or all that match a filter, or all', 'hc.discard(ids, table, connection); with match, the ids of hc.write_errors that match', pick),
    '/api/logs': get('The sync log, newest first: by mapping (object), level and worse, direction, event type (event), before an id', 'hc.sync_log', {
      parameters: ['object', 'level', 'direction', 'event', 'before', 'limit'].map((name) => ({ name, in: 'query', schema: { type: ['before', 'limit'].includes(name) ? 'integer' : 'string' } })),
    }),
    '/api/log-events': get("The sync log's event types in the period, most frequent first, with their line count, latest time and worst level: the Logs tab's type filter", 'hc.dashboard_log_events(hours, connection)', {
      parameters: [{ name: 'hours', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 2160, default: 168 } }],
    }),
    '/api/salesforce/objects': get("The org's objects a mapping can have (one Salesforce call, on demand)", 'none: GET /sobjects'),
    '/api/salesforce/objects/{object}': get("An object's fields with their types, external-id and unique flags: the field picker (one Salesforce call)", 'none: GET /sobjects/{object}/describe', { parameters: [objectParam] }),
    '/api/mappings/{object}/salesforce-count': get("Salesforce's row count: its estimate above 1,000,000 rows (one call, /limits/recordCount), else SELECT COUNT() (a second call)", 'hc._mapping(object, connection)', { parameters: [objectParam] }),
    '/api/orphans': get('Orphaned mappings: their object is gone from Salesforce (SYNC_REMOVED)', "hc.mappings, the rows in state 'SYNC_REMOVED'"),
    '/api/orphans/check': post("Mark mappings whose object the org no longer has SYNC_REMOVED (one Salesforce call)", "hc.set_mapping_state(id, 'SYNC_REMOVED', message)"),
    '/api/orphans/{object}/remove': post('Remove an orphaned mapping; its table and rows are kept', 'hc.delete_mapping(object, connection, false)', { parameters: [objectParam] }),
    '/api/connection/write-algorithm': post('Set the write algorithm: ordered or merged', 'hc.set_write_algorithm(algorithm, connection)', {
      requestBody: { required: true, ...json({ type: 'object', required: ['algorithm'], properties: { algorithm: { enum: ['ordered', 'merged'] } } }) },
    }),
    '/api/explorer/{object}': get("A mapped table's rows, newest first, by sync state and search (id, sfid, _hc_err, name)", 'hc.dashboard_rows(object, state, q, limit, connection)', {
      parameters: [objectParam, { name: 'state', in: 'query', schema: { type: 'string' }, description: '_hc_lastop, e.g. FAILED' },
        { name: 'q', in: 'query', schema: { type: 'string' } }, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } }],
    }),
    '/api/explorer/{object}/{id}': get('One row whole, with the fields its mapping maps', 'hc.dashboard_record(object, id, connection)', {
      parameters: [objectParam, { name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
    }),
    '/api/explorer/{object}/{id}/salesforce': {
      get: {
        summary: 'The same record as Salesforce returns it (one API call, counted in hc.api_calls), beside the Postgres values, differences marked',
        description: 'SQL: hc.dashboard_record(object, id, connection), then GET /sobjects/{object}/{sfid}?fields=…',
        parameters: [objectParam, { name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
        responses: { ...ok('fields: field_name, column_name, postgres, salesforce, differs'), ...refusals, 404: { description: 'Salesforce has no such record' }, 502: { description: 'Salesforce refused the lookup' } },
      },
    },
    '/api/conflicts': get('Conflicts (hc.conflicts): mapping, record, fields, both values and the agreed one before, both change times, policy, winner; parked (open) first, then the newest', 'hc.conflicts', {
      parameters: [objectQuery(), { name: 'state', in: 'query', schema: { enum: ['open', 'resolved', 'all'], default: 'all' }, description: 'open: parked, waiting for an operator' },
        { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 200 } }],
    }),
    '/api/conflicts/{id}/resolve': post("Resolve a parked conflict: choice 'pg' (Postgres's values), 'sf' (Salesforce's) or an object of chosen values per field; the values reach the side that lost through the normal paths. 400 when it is resolved already, 404 when there is no such conflict", 'hc.resolve_conflict(id, choice)', {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
      requestBody: { required: true, ...json({ type: 'object', required: ['choice'], additionalProperties: false, properties: { choice: { oneOf: [{ enum: ['pg', 'sf'] }, { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean', 'null'] } }] } } }) },
    }),
    '/api/notifications': get('Notifications (writes newly failing, error states), newest first, with active and webhook delivery state', 'hc.notifications_list(limit, connection)', {
      parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } }],
    }),
    '/api/audit': get('The audit trail (latest 500)', 'hc.audit_log'),
    '/api/audit.csv': { get: { summary: 'The audit trail as CSV', description: 'SQL: hc.audit_log', responses: { 200: { description: 'CSV', content: { 'text/csv': {} } }, ...refusals } } },
    '/api/export': get('The mapping JSON (Heroku Connect export format v1)', 'hc.export_config(connection)', {
      parameters: [{ name: 'download', in: 'query', schema: { type: 'string' }, description: 'any value: served as an attachment' }],
    }),
    '/api/import': post('Import a mapping JSON file (created, updated, unchanged)', 'hc.import_config(config, connection)', {
      requestBody: { required: true, ...json({ type: 'object', required: ['mappings'] }) },
    }),
    '/api/events': { get: { summary: 'Server-sent events: `nudge` with {kind: control|writes|activity|notifications} when something changed', responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': {} } }, ...refusals } } },
  },
};
