// The hc.* tables and views the boundary reads with the query builder, as kysely types. Only what the
// boundary reads this way is here; calls of hc.* functions are typed at their call in the boundary.
export interface HcDatabase {
  'hc.connections': {
    id: number;
    name: string;
    schema_name: string;
    state: string;
  };
}
