// Change events as the Pub/Sub API carries them: one Avro record schema per object (<Object>ChangeEvent, namespace
// com.sforce.eventbus), ChangeEventHeader first, then every field the object's events can carry as a union with
// null. Unlike CometD's JSON, every field is present (unchanged ones null) and the header's changedFields,
// nulledFields and diffFields are bitmaps of field positions in this schema.
import avro from 'avsc';
import type { ChangeEvent } from '../org.js';
import type { FieldMeta, ObjectMeta } from '../schema.js';
import { parseDateTime } from '../values.js';

const CHANGE_TYPES = ['CREATE', 'UPDATE', 'DELETE', 'UNDELETE', 'GAP_CREATE', 'GAP_UPDATE', 'GAP_DELETE', 'GAP_UNDELETE', 'GAP_OVERFLOW'];

const stringArray = { type: 'array', items: 'string' };

const HEADER = {
  type: 'record', name: 'ChangeEventHeader', namespace: 'com.sforce.eventbus',
  fields: [
    { name: 'entityName', type: 'string' },
    { name: 'recordIds', type: stringArray },
    { name: 'changeType', type: { type: 'enum', name: 'ChangeType', namespace: 'com.sforce.eventbus', symbols: CHANGE_TYPES } },
    { name: 'changeOrigin', type: 'string' },
    { name: 'transactionKey', type: 'string' },
    { name: 'sequenceNumber', type: 'int' },
    { name: 'commitTimestamp', type: 'long' },
    { name: 'commitNumber', type: 'long' },
    { name: 'commitUser', type: 'string' },
    { name: 'nulledFields', type: stringArray },
    { name: 'diffFields', type: stringArray },
    { name: 'changedFields', type: stringArray },
  ],
};

/** Fields a change event body can carry: the same ones CometD sends (no formulas, Id, IsDeleted, SystemModstamp). */
export function eventFields(obj: ObjectMeta): FieldMeta[] {
  return obj.fields.filter((f) => !f.calculated && f.name !== 'Id' && f.name !== 'IsDeleted' && f.name !== 'SystemModstamp');
}

function avroType(f: FieldMeta): unknown {
  switch (f.type) {
    case 'boolean': return 'boolean';
    case 'int': return 'int';
    case 'double': case 'currency': case 'percent': return 'double';
    case 'datetime': return { type: 'long', logicalType: 'timestamp-millis' };
    case 'date': return { type: 'int', logicalType: 'date' };
    default: return 'string';
  }
}

export interface EventSchema {
  id: string;
  json: string;
  type: avro.Type;
  fields: FieldMeta[];
  /** Field name -> position in the record (0 is ChangeEventHeader). */
  position: Map<string, number>;
}

/** The Avro schema of an object's change events; its id is the schema's fingerprint (stable across restarts). */
export function buildSchema(obj: ObjectMeta): EventSchema {
  const fields = eventFields(obj);
  const record = {
    type: 'record', name: obj.changeEventName, namespace: 'com.sforce.eventbus',
    fields: [{ name: 'ChangeEventHeader', type: HEADER }, ...fields.map((f) => ({ name: f.name, type: ['null', avroType(f)], default: null }))],
  };
  const json = JSON.stringify(record);
  const type = avro.Type.forSchema(record as avro.Schema);
  const id = type.fingerprint('sha256').toString('base64url').slice(0, 22);
  return { id, json, type, fields, position: new Map(fields.map((f, i) => [f.name, i + 1])) };
}

/**
 * Salesforce's field bitmap: element 0 is "0x" + upper-case hex whose bit i (least significant first) marks the
 * i-th top-level field of the schema. Compound sub-fields would follow as "<index>-0x<hex>"; the emulated objects
 * have no compound fields. Names not in the schema are left out.
 */
export function fieldBitmap(schema: EventSchema, names: string[]): string[] {
  let bits = 0n;
  for (const n of names) {
    const i = schema.position.get(n);
    if (i !== undefined) bits |= 1n << BigInt(i);
  }
  return bits === 0n ? [] : ['0x' + bits.toString(16).toUpperCase()];
}

function avroValue(f: FieldMeta, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (f.type) {
    case 'boolean': return typeof v === 'boolean' ? v : String(v).toLowerCase() === 'true';
    case 'int': return Math.trunc(Number(v));
    case 'double': case 'currency': case 'percent': return Number(v);
    case 'datetime': { const ms = typeof v === 'number' ? v : parseDateTime(String(v)); return Number.isFinite(ms) ? ms : null; }
    case 'date': { const ms = Date.parse(String(v).slice(0, 10) + 'T00:00:00Z'); return Number.isFinite(ms) ? Math.round(ms / 86_400_000) : null; }
    default: return String(v);
  }
}

/** Encodes one committed change as the Avro binary payload of a Pub/Sub ProducerEvent. */
export function encodeChange(schema: EventSchema, e: ChangeEvent): Buffer {
  const record: Record<string, unknown> = {
    ChangeEventHeader: {
      entityName: e.entityName, recordIds: e.recordIds, changeType: e.changeType, changeOrigin: e.changeOrigin,
      transactionKey: e.transactionKey, sequenceNumber: e.sequenceNumber, commitTimestamp: e.commitTimestamp,
      commitNumber: e.commitNumber, commitUser: e.commitUser,
      nulledFields: fieldBitmap(schema, e.nulledFields), diffFields: fieldBitmap(schema, e.diffFields),
      changedFields: fieldBitmap(schema, e.changedFields),
    },
  };
  const byLower = new Map(Object.entries(e.fields).map(([k, v]) => [k.toLowerCase(), v]));
  for (const f of schema.fields) record[f.name] = avroValue(f, byLower.get(f.name.toLowerCase()));
  return schema.type.toBuffer(record);
}
