// A field of a Salesforce describe, as `hc.apply_mapping_ddl` reads it, for tests that build a
// mapped table in SQL alone. Defaults are a plain nillable, writable field; pass what differs.
export const describeField = (name: string, type: string, extra: Record<string, unknown> = {}) => ({
  name, type, length: 0, nillable: true, createable: true, updateable: true, calculated: false,
  externalId: false, unique: false, referenceTo: [], relationshipName: null, ...extra,
});

/** The fields every object has and no one writes: Id, IsDeleted, SystemModstamp. */
export const systemFields = () => [
  describeField('Id', 'id', { nillable: false, createable: false, updateable: false }),
  describeField('IsDeleted', 'boolean', { createable: false, updateable: false }),
  describeField('SystemModstamp', 'datetime', { createable: false, updateable: false }),
];
