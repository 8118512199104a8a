// Org definition: what an org file may declare, and the normalised form the emulator works with.

export type FieldType =
  | 'id' | 'string' | 'textarea' | 'email' | 'phone' | 'url' | 'picklist' | 'multipicklist'
  | 'boolean' | 'int' | 'double' | 'currency' | 'percent' | 'date' | 'datetime' | 'reference';

/** Declarative condition used by validation rules and flows. */
export type Condition =
  | { field: string; op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'contains' | 'startsWith'; value: unknown }
  | { field: string; op: 'isNull' | 'notNull' | 'isChanged' }
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition };

export interface FieldDefinition {
  name: string;
  label?: string;
  type: FieldType;
  length?: number;
  precision?: number;
  scale?: number;
  nillable?: boolean;
  createable?: boolean;
  updateable?: boolean;
  /** Formula fields: computed on read from `formula`, never stored, never in change events. */
  calculated?: boolean;
  formula?: string;
  externalId?: boolean;
  unique?: boolean;
  caseSensitive?: boolean;
  referenceTo?: string[];
  relationshipName?: string;
  picklistValues?: string[];
  restrictedPicklist?: boolean;
  defaultValue?: unknown;
  nameField?: boolean;
}

export interface ValidationRule {
  name: string;
  errorCondition: Condition;
  errorMessage: string;
  errorDisplayField?: string;
  active?: boolean;
}

/** Record-triggered automation: sets fields on insert and/or update. */
export interface FlowDefinition {
  name: string;
  on: Array<'insert' | 'update'>;
  /** before: changes ride in the triggering save; after: a separate update in the same transaction. */
  timing?: 'before' | 'after';
  condition?: Condition;
  /** Field -> expression in the mini formula language (see expr.ts). */
  set: Record<string, string>;
  active?: boolean;
}

export interface DuplicateRule {
  name: string;
  fields: string[];
  errorMessage?: string;
}

export interface ObjectDefinition {
  name: string;
  label?: string;
  labelPlural?: string;
  keyPrefix: string;
  custom?: boolean;
  /** Standard fields (Id, IsDeleted, audit fields, OwnerId) are added unless listed here. */
  fields: FieldDefinition[];
  hasOwner?: boolean;
  validationRules?: ValidationRule[];
  flows?: FlowDefinition[];
  duplicateRules?: DuplicateRule[];
  /** Is this object enabled for Change Data Capture (default true). */
  cdc?: boolean;
}

export interface OrgDefinition {
  name?: string;
  objects: ObjectDefinition[];
  users?: Array<{ username: string; password: string; firstName?: string; lastName?: string; email?: string }>;
  clientId?: string;
  clientSecret?: string;
  dailyApiLimit?: number;
  /** Custom change event channels: name (`Sync__chn`) -> the objects it carries. Served as `/data/<name>`. */
  channels?: Record<string, string[]>;
}

export interface FieldMeta extends Required<Pick<FieldDefinition, 'name' | 'type'>> {
  label: string;
  length: number;
  precision: number;
  scale: number;
  nillable: boolean;
  createable: boolean;
  updateable: boolean;
  calculated: boolean;
  formula?: string;
  externalId: boolean;
  unique: boolean;
  caseSensitive: boolean;
  referenceTo: string[];
  relationshipName: string | null;
  picklistValues: string[];
  restrictedPicklist: boolean;
  defaultValue: unknown;
  nameField: boolean;
  custom: boolean;
  system: boolean;
  /** Required on create: not nillable, createable, no default, not defaulted on create. */
  required: boolean;
  defaultedOnCreate: boolean;
  idLookup: boolean;
}

export interface ObjectMeta {
  name: string;
  label: string;
  labelPlural: string;
  keyPrefix: string;
  custom: boolean;
  hasOwner: boolean;
  fields: FieldMeta[];
  fieldsByLower: Map<string, FieldMeta>;
  /** relationshipName (lower-case) -> reference field */
  relationships: Map<string, FieldMeta>;
  validationRules: ValidationRule[];
  flows: FlowDefinition[];
  duplicateRules: DuplicateRule[];
  cdc: boolean;
  /** Channel name of the object's change events, e.g. AccountChangeEvent, Invoice__ChangeEvent. */
  changeEventName: string;
  childRelationships: Array<{ childSObject: string; field: string; relationshipName: string | null }>;
}

const TEXT_TYPES = new Set<FieldType>(['string', 'textarea', 'email', 'phone', 'url', 'picklist', 'multipicklist']);
export const isTextType = (t: FieldType) => TEXT_TYPES.has(t);
export const isNumberType = (t: FieldType) => t === 'int' || t === 'double' || t === 'currency' || t === 'percent';

function labelFor(name: string): string {
  const base = name.replace(/__c$/, '').replace(/Id$/, '').replace(/_/g, ' ');
  return base.replace(/([a-z])([A-Z])/g, '$1 $2').trim() || name;
}

function systemFields(obj: ObjectDefinition): FieldDefinition[] {
  const f: FieldDefinition[] = [
    { name: 'Id', type: 'id', label: `${obj.label ?? obj.name} ID`, nillable: false, createable: false, updateable: false },
  ];
  if (obj.name !== 'User') f.push({ name: 'IsDeleted', type: 'boolean', label: 'Deleted', nillable: false, createable: false, updateable: false });
  if (obj.hasOwner !== false && obj.name !== 'User')
    f.push({ name: 'OwnerId', type: 'reference', label: 'Owner ID', referenceTo: ['User'], relationshipName: 'Owner', nillable: false, createable: true, updateable: true });
  f.push(
    { name: 'CreatedDate', type: 'datetime', label: 'Created Date', nillable: false, createable: false, updateable: false },
    { name: 'CreatedById', type: 'reference', label: 'Created By ID', referenceTo: ['User'], relationshipName: 'CreatedBy', nillable: false, createable: false, updateable: false },
    { name: 'LastModifiedDate', type: 'datetime', label: 'Last Modified Date', nillable: false, createable: false, updateable: false },
    { name: 'LastModifiedById', type: 'reference', label: 'Last Modified By ID', referenceTo: ['User'], relationshipName: 'LastModifiedBy', nillable: false, createable: false, updateable: false },
    { name: 'SystemModstamp', type: 'datetime', label: 'System Modstamp', nillable: false, createable: false, updateable: false },
  );
  return f;
}

const SYSTEM_NAMES = new Set(['Id', 'IsDeleted', 'OwnerId', 'CreatedDate', 'CreatedById', 'LastModifiedDate', 'LastModifiedById', 'SystemModstamp']);
const DEFAULTED = new Set(['Id', 'IsDeleted', 'OwnerId', 'CreatedDate', 'CreatedById', 'LastModifiedDate', 'LastModifiedById', 'SystemModstamp']);

export function normalizeObject(obj: ObjectDefinition): ObjectMeta {
  const declared = new Map(obj.fields.map((f) => [f.name.toLowerCase(), f]));
  const all: FieldDefinition[] = [];
  for (const sf of systemFields(obj)) {
    const own = declared.get(sf.name.toLowerCase());
    all.push(own ? { ...sf, ...own } : sf);
    declared.delete(sf.name.toLowerCase());
  }
  for (const f of obj.fields) if (declared.has(f.name.toLowerCase())) all.push(f);

  const custom = obj.custom ?? obj.name.endsWith('__c');
  const fields: FieldMeta[] = all.map((f) => {
    const type = f.type;
    const calculated = !!f.calculated;
    const system = SYSTEM_NAMES.has(f.name);
    const length = f.length ?? (type === 'id' || type === 'reference' ? 18 : isTextType(type) ? (type === 'textarea' ? 32768 : 255) : 0);
    const nillable = type === 'boolean' ? false : (f.nillable ?? true);
    const createable = calculated ? false : (f.createable ?? true);
    const updateable = calculated ? false : (f.updateable ?? true);
    const defaultedOnCreate = DEFAULTED.has(f.name) || (type === 'boolean' && f.defaultValue !== undefined) || f.defaultValue !== undefined;
    return {
      name: f.name,
      type,
      label: f.label ?? labelFor(f.name),
      length,
      precision: f.precision ?? (isNumberType(type) && type !== 'int' ? 18 : 0),
      scale: f.scale ?? (type === 'currency' || type === 'percent' ? 2 : type === 'double' ? 0 : 0),
      nillable,
      createable,
      updateable,
      calculated,
      formula: f.formula,
      externalId: !!f.externalId,
      unique: !!f.unique,
      caseSensitive: !!f.caseSensitive,
      referenceTo: f.referenceTo ?? [],
      relationshipName: f.relationshipName ?? null,
      picklistValues: f.picklistValues ?? [],
      restrictedPicklist: !!f.restrictedPicklist,
      defaultValue: type === 'boolean' ? (f.defaultValue ?? false) : (f.defaultValue ?? null),
      nameField: !!f.nameField,
      custom: f.name.endsWith('__c'),
      system,
      required: !nillable && createable && type !== 'boolean' && !defaultedOnCreate,
      defaultedOnCreate: defaultedOnCreate || type === 'boolean',
      idLookup: f.name === 'Id' || !!f.externalId || (!!f.nameField && !calculated),
    };
  });
  const fieldsByLower = new Map(fields.map((f) => [f.name.toLowerCase(), f]));
  const relationships = new Map<string, FieldMeta>();
  for (const f of fields) if (f.type === 'reference' && f.relationshipName) relationships.set(f.relationshipName.toLowerCase(), f);
  return {
    name: obj.name,
    label: obj.label ?? labelFor(obj.name),
    labelPlural: obj.labelPlural ?? (obj.label ?? labelFor(obj.name)) + 's',
    keyPrefix: obj.keyPrefix,
    custom,
    hasOwner: fieldsByLower.has('ownerid'),
    fields,
    fieldsByLower,
    relationships,
    validationRules: (obj.validationRules ?? []).filter((r) => r.active !== false),
    flows: (obj.flows ?? []).filter((r) => r.active !== false),
    duplicateRules: obj.duplicateRules ?? [],
    cdc: obj.cdc !== false,
    changeEventName: custom ? obj.name.replace(/__c$/, '__ChangeEvent') : obj.name + 'ChangeEvent',
    childRelationships: [],
  };
}

export interface OrgMeta {
  objects: Map<string, ObjectMeta>; // lower-case name -> meta
  byPrefix: Map<string, ObjectMeta>;
  byChangeEvent: Map<string, ObjectMeta>;
  ordered: ObjectMeta[];
}

export function normalizeOrg(def: OrgDefinition): OrgMeta {
  const ordered = def.objects.map(normalizeObject);
  const objects = new Map(ordered.map((o) => [o.name.toLowerCase(), o]));
  const byPrefix = new Map(ordered.map((o) => [o.keyPrefix, o]));
  const byChangeEvent = new Map(ordered.map((o) => [o.changeEventName, o]));
  for (const o of ordered) {
    for (const f of o.fields) {
      if (f.type !== 'reference') continue;
      for (const target of f.referenceTo) {
        const t = objects.get(target.toLowerCase());
        if (!t) continue;
        let rel: string | null = null;
        if (!f.system) rel = o.custom ? o.name.replace(/__c$/, 's__r') : o.name === 'Opportunity' ? 'Opportunities' : o.name + (o.name.endsWith('s') ? 'es' : 's');
        if (!t.childRelationships.some((c) => c.childSObject === o.name && c.field === f.name))
          t.childRelationships.push({ childSObject: o.name, field: f.name, relationshipName: rel });
      }
    }
  }
  return { objects, byPrefix, byChangeEvent, ordered };
}
