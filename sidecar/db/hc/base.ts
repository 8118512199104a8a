// The base of the typed SQL boundary (sidecar/db/hc/): the only TypeScript that names hc.* or a
// connection schema. Queries are built with kysely (the `sql` template for calls of hc.* functions and
// for DDL-free statements, the query builder `qb` for reads of views and tables typed in types.ts),
// compiled here, and run on the session the caller holds: the sync pool, a transaction's client, or a
// lock's dedicated session. So a call keeps its session's options (the sync's xmlbinary = hex marks its
// writes as the sync's own), its transaction, and its advisory locks.
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql, type Compilable, type CompiledQuery, type RawBuilder } from 'kysely';
import type { HcDatabase } from './types.js';

/** A pg Pool or a checked-out client: where a boundary function runs its statement. */
export interface Session {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

/** Builds and compiles; never connects (the caller's session runs what it compiles). */
export const qb = new Kysely<HcDatabase>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

export { sql };

/** A raw `sql` template compiles against the builder; a builder's query compiles itself. */
function compiled<R>(q: RawBuilder<R> | Compilable<R>): CompiledQuery<R> {
  return q.compile.length ? (q as RawBuilder<R>).compile(qb) : (q as Compilable<R>).compile();
}

/** Runs a built query on `s` and returns its rows, typed by the query. */
export async function rows<R>(s: Session, q: RawBuilder<R> | Compilable<R>): Promise<R[]> {
  const c = compiled(q);
  const res = await s.query(c.sql, c.parameters as unknown[]);
  return res.rows as R[];
}

/** The first row (undefined when there is none). */
export async function first<R>(s: Session, q: RawBuilder<R> | Compilable<R>): Promise<R | undefined> {
  return (await rows(s, q))[0];
}

/** Runs a statement for its effect; returns how many rows it touched. */
export async function exec(s: Session, q: RawBuilder<unknown> | Compilable<unknown>): Promise<number> {
  const c = compiled(q);
  const res = await s.query(c.sql, c.parameters as unknown[]);
  return res.rowCount ?? 0;
}

/** A quoted identifier (a connection schema, a mapped table): `sql.id` with kysely's quoting. */
export const ident = (...parts: string[]) => sql.id(...parts);
