// Account-like rows with realistic widths: company names, addresses, phone numbers, web sites, picklist
// values and a free-text description of 0–400 characters (~120 on average), as a CRM export has them.
// Deterministic (seeded), so every run loads the same bytes.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { stringify } from 'csv-stringify';

export type AccountRow = Record<string, string | number | null>;

/** mulberry32: a small, fast, seeded PRNG; good enough for test data, not for anything else. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PREFIX = ['Acme', 'Global', 'United', 'Pacific', 'Northern', 'Blue', 'Summit', 'Pioneer', 'Evergreen', 'Silver', 'Atlas', 'Vertex', 'Harbor', 'Granite', 'Liberty', 'Cedar'];
const CORE = ['Dynamics', 'Logistics', 'Foods', 'Energy', 'Systems', 'Analytics', 'Health', 'Capital', 'Robotics', 'Textiles', 'Media', 'Pharma', 'Motors', 'Networks', 'Ventures', 'Labs'];
const SUFFIX = ['Inc.', 'LLC', 'Ltd', 'GmbH', 'S.A.', 'Corp.', 'Group', 'Holdings', 'plc', 'AG'];
const STREETS = ['Market Street', 'Main Street', 'Oak Avenue', 'Mission Boulevard', 'King Road', 'Harbor Drive', 'Elm Street', 'Station Road', 'Park Lane', 'Industrial Way'];
const CITIES: [string, string, string, string][] = [
  ['San Francisco', 'CA', '94105', 'United States'], ['Austin', 'TX', '73301', 'United States'], ['New York', 'NY', '10001', 'United States'],
  ['Chicago', 'IL', '60601', 'United States'], ['London', 'England', 'EC1A 1BB', 'United Kingdom'], ['Berlin', 'Berlin', '10115', 'Germany'],
  ['Paris', 'Île-de-France', '75001', 'France'], ['Toronto', 'ON', 'M5H 2N2', 'Canada'], ['Sydney', 'NSW', '2000', 'Australia'], ['Tokyo', 'Tokyo', '100-0001', 'Japan'],
];
const WORDS = 'customer renewal contract pipeline strategic account partner expansion enterprise regional quarterly review onboarding support escalation pricing discount procurement integration migration rollout pilot budget forecast stakeholder executive sponsor signed pending'.split(' ');

const PICKLISTS: Record<string, string[]> = {
  Type: ['Prospect', 'Customer - Direct', 'Customer - Channel', 'Channel Partner / Reseller', 'Installation Partner', 'Technology Partner', 'Other'],
  Industry: ['Agriculture', 'Apparel', 'Banking', 'Biotechnology', 'Chemicals', 'Communications', 'Construction', 'Consulting', 'Education', 'Electronics', 'Energy', 'Engineering', 'Finance', 'Healthcare', 'Insurance', 'Manufacturing', 'Media', 'Retail', 'Technology', 'Transportation'],
  Rating: ['Hot', 'Warm', 'Cold'],
  Ownership: ['Public', 'Private', 'Subsidiary', 'Other'],
  AccountSource: ['Web', 'Phone Inquiry', 'Partner Referral', 'Purchased List', 'Other'],
};

export interface FieldInfo {
  name: string;
  type: string;
  length?: number;
  picklistValues?: { value: string }[];
}

/** Builds rows for the Account fields the org has (from its describe), picklists from the org's values. */
export function accountGenerator(fields: FieldInfo[], seed = 42): { columns: string[]; row(i: number): AccountRow } {
  const rand = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
  const byName = new Map(fields.map((f) => [f.name, f]));
  const values = (name: string) => {
    const f = byName.get(name);
    const declared = f?.picklistValues?.map((p) => p.value).filter(Boolean);
    return declared?.length ? declared : PICKLISTS[name];
  };
  const clip = (name: string, v: string) => {
    const len = byName.get(name)?.length;
    return len && v.length > len ? v.slice(0, len) : v;
  };
  const gens: Record<string, (i: number, ctx: { company: string; city: [string, string, string, string] }) => string | number | null> = {
    Name: (_i, c) => c.company,
    AccountNumber: (i) => `ACC-${String(i).padStart(8, '0')}`,
    Site: () => pick(['Headquarters', 'Branch', 'Plant', 'Warehouse', 'Field office']),
    Type: () => pick(values('Type')),
    Industry: () => pick(values('Industry')),
    Rating: () => pick(values('Rating')),
    Ownership: () => pick(values('Ownership')),
    AccountSource: () => pick(values('AccountSource')),
    Phone: () => `(${100 + Math.floor(rand() * 900)}) 555-${String(Math.floor(rand() * 10000)).padStart(4, '0')}`,
    Fax: () => (rand() < 0.3 ? `(${100 + Math.floor(rand() * 900)}) 555-${String(Math.floor(rand() * 10000)).padStart(4, '0')}` : null),
    Website: (_i, c) => `https://www.${c.company.toLowerCase().replace(/[^a-z]+/g, '')}.example.com`,
    TickerSymbol: () => (rand() < 0.2 ? Array.from({ length: 3 + Math.floor(rand() * 2) }, () => String.fromCharCode(65 + Math.floor(rand() * 26))).join('') : null),
    Sic: () => String(1000 + Math.floor(rand() * 8999)),
    NumberOfEmployees: () => Math.floor(rand() ** 3 * 50000) + 1,
    AnnualRevenue: () => Math.round(rand() ** 2 * 5e8),
    BillingStreet: () => `${1 + Math.floor(rand() * 9999)} ${pick(STREETS)}${rand() < 0.4 ? `, Suite ${100 + Math.floor(rand() * 900)}` : ''}`,
    BillingCity: (_i, c) => c.city[0],
    BillingState: (_i, c) => c.city[1],
    BillingPostalCode: (_i, c) => c.city[2],
    BillingCountry: (_i, c) => c.city[3],
    ShippingStreet: () => `${1 + Math.floor(rand() * 9999)} ${pick(STREETS)}`,
    ShippingCity: (_i, c) => c.city[0],
    ShippingState: (_i, c) => c.city[1],
    ShippingPostalCode: (_i, c) => c.city[2],
    ShippingCountry: (_i, c) => c.city[3],
    // A UUID, as HC's documentation recommends for the unique identifier of read-write mappings.
    External_Id__c: () => {
      const h = () => Math.floor(rand() * 0x100000000).toString(16).padStart(8, '0');
      const x = h() + h() + h() + h();
      return `${x.slice(0, 8)}-${x.slice(8, 12)}-4${x.slice(13, 16)}-a${x.slice(17, 20)}-${x.slice(20, 32)}`;
    },
    Description: () => {
      const n = Math.floor(rand() ** 2 * 60);
      return n ? Array.from({ length: n }, () => pick(WORDS)).join(' ') : null;
    },
  };
  const columns = Object.keys(gens).filter((name) => {
    const f = byName.get(name);
    return f !== undefined && (f as { createable?: boolean }).createable !== false;
  });
  return {
    columns,
    row(i) {
      const ctx = { company: `${pick(PREFIX)} ${pick(CORE)} ${pick(SUFFIX)} ${i}`, city: pick(CITIES) };
      const r: AccountRow = {};
      for (const c of columns) {
        const v = gens[c](i, ctx);
        r[c] = typeof v === 'string' ? clip(c, v) : v;
      }
      return r;
    },
  };
}

/**
 * Writes `count` rows as CSV (Bulk 2.0 dialect: header of API names, empty = null). Salesforce takes at
 * most 150 MB per ingest job, so the rows go into parts of `rowsPerFile` (~40 MB per 100,000 rows):
 * `<file>` for the first part, `<file>.2`, `<file>.3`, … after it.
 */
export async function writeAccountCsv(
  file: string,
  gen: ReturnType<typeof accountGenerator>,
  count: number,
  rowsPerFile = 200_000,
): Promise<{ bytes: number; files: string[] }> {
  const files: string[] = [];
  let bytes = 0;
  for (let start = 1, part = 1; start <= count; start += rowsPerFile, part++) {
    const name = part === 1 ? file : `${file}.${part}`;
    const out = createWriteStream(name);
    const csv = stringify({ header: true, columns: gen.columns });
    csv.pipe(out);
    for (let i = start; i < Math.min(count + 1, start + rowsPerFile); i++) {
      if (!csv.write(gen.row(i))) await once(csv, 'drain');
    }
    csv.end();
    await once(out, 'finish');
    bytes += out.bytesWritten;
    files.push(name);
  }
  return { bytes, files };
}
