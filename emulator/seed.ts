// Deterministic, realistic-looking data for the default org (and type-driven filler for other objects).
import type { Org, Rec } from './org.js';
import type { FieldMeta, ObjectMeta } from './schema.js';
import { makeId } from './ids.js';
import { formatDateTime } from './values.js';

function rng(seed: number) {
  let a = seed >>> 0;
  return () => { a |= 0; a = (a + 0x6d2b79f5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const FIRST = ['Ada', 'Alan', 'Grace', 'Linus', 'Margaret', 'Dennis', 'Barbara', 'Ken', 'Frances', 'Edsger', 'Radia', 'Donald', 'Katherine', 'John', 'Hedy', 'Tim', 'Sophie', 'Guido', 'Anita', 'Bjarne', 'Lucia', 'Mateo', 'Amara', 'Kenji', 'Priya', 'Omar', 'Ingrid', 'Tomás', 'Yara', 'Noah'];
const LAST = ['Lovelace', 'Turing', 'Hopper', 'Torvalds', 'Hamilton', 'Ritchie', 'Liskov', 'Thompson', 'Allen', 'Dijkstra', 'Perlman', 'Knuth', 'Johnson', 'McCarthy', 'Lamarr', 'Berners-Lee', 'Wilson', 'van Rossum', 'Borg', 'Stroustrup', 'García', 'Okafor', 'Tanaka', 'Sharma', 'Haddad', 'Larsen', 'Moreau', 'Silva', 'Novak', 'Kim'];
const WORDS = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Stark', 'Wayne', 'Tyrell', 'Cyberdyne', 'Soylent', 'Hooli', 'Vandelay', 'Wonka', 'Aperture', 'Massive', 'Oscorp', 'Pied Piper', 'Gringotts', 'Monarch', 'Nakatomi', 'Virtucon'];
const SUFFIX = ['Inc.', 'LLC', 'Ltd.', 'GmbH', 'Group', 'Holdings', 'Labs', 'Systems', 'Partners', 'Industries'];
const CITIES = [['Paris', 'France'], ['Berlin', 'Germany'], ['Austin', 'USA'], ['Toronto', 'Canada'], ['Osaka', 'Japan'], ['Lagos', 'Nigeria'], ['Lisbon', 'Portugal'], ['Pune', 'India'], ['Oslo', 'Norway'], ['Denver', 'USA']];
const TITLES = ['CEO', 'CTO', 'VP Sales', 'Engineer', 'Buyer', 'Director of Operations', 'Analyst', 'Office Manager'];

const pad = (n: number, w = 6) => String(n).padStart(w, '0');

export function seedOrg(org: Org, counts: Record<string, number>, seed = 42): void {
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
  const userId = org.defaultUserId;
  const now = Date.now();
  const created = new Map<string, string[]>();
  // Parents first so lookups have targets.
  const order = ['Account', 'Contact', 'Lead', 'Opportunity', 'Case', 'Invoice__c'];
  const names = Object.keys(counts).sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  for (const name of names) {
    const obj = org.object(name);
    if (!obj) throw new Error(`seed: unknown object ${name}`);
    const existing = org.table(obj).size;
    const ids: string[] = [];
    const recs: Rec[] = [];
    const parents = (o: string) => { const p = created.get(o) ?? [...(org.object(o) ? org.table(org.object(o)!).keys() : [])]; created.set(o, p); return p; };
    for (let i = 0; i < counts[name]; i++) {
      const n = existing + i + 1;
      const t = formatDateTime(now - Math.floor(r() * 90 * 86_400_000));
      const id = makeId(obj.keyPrefix, org.nextSeq());
      const rec: Rec = { Id: id, IsDeleted: false, CreatedDate: t, CreatedById: userId, LastModifiedDate: t, LastModifiedById: userId, SystemModstamp: t };
      if (obj.hasOwner) rec.OwnerId = userId;
      const first = pick(FIRST), last = pick(LAST);
      const [city, country] = pick(CITIES);
      switch (obj.name) {
        case 'Account': {
          const company = `${pick(WORDS)} ${pick(SUFFIX)}`;
          const rev = Math.round(r() * 50_000_000);
          Object.assign(rec, { Name: `${company} ${n}`, AccountNumber: `A-${pad(n)}`, Type: pick(obj.fieldsByLower.get('type')!.picklistValues), Industry: pick(obj.fieldsByLower.get('industry')!.picklistValues),
            Phone: `+1 555 ${pad(Math.floor(r() * 10_000_000), 7)}`, Website: `https://www.${company.split(' ')[0].toLowerCase()}${n}.example`, AnnualRevenue: rev,
            NumberOfEmployees: Math.floor(r() * 20_000), BillingCity: city, BillingCountry: country, External_Id__c: `ACC-${pad(n)}`, Rating: rev >= 10_000_000 ? 'Hot' : pick(['Warm', 'Cold', null]) });
          break;
        }
        case 'Contact': {
          const acc = parents('Account');
          Object.assign(rec, { FirstName: first, LastName: last, Email: `${first}.${last}.${n}@example.com`.toLowerCase().replace(/\s/g, ''), Phone: `+1 555 ${pad(Math.floor(r() * 10_000_000), 7)}`,
            Title: pick(TITLES), AccountId: acc.length ? pick(acc) : null, MailingCity: city, MailingCountry: country, LeadSource: pick(['Web', 'Phone Inquiry', 'Partner Referral', 'Other']),
            HasOptedOutOfEmail: r() < 0.1, Birthdate: new Date(Date.UTC(1950 + Math.floor(r() * 50), Math.floor(r() * 12), 1 + Math.floor(r() * 28))).toISOString().slice(0, 10), External_Id__c: `CON-${pad(n)}` });
          break;
        }
        case 'Lead':
          Object.assign(rec, { FirstName: first, LastName: last, Company: `${pick(WORDS)} ${pick(SUFFIX)}`, Email: `lead.${n}@example.org`, Status: pick(obj.fieldsByLower.get('status')!.picklistValues.slice(0, 2)), IsConverted: false, LeadSource: 'Web' });
          break;
        case 'Opportunity': {
          const acc = parents('Account');
          Object.assign(rec, { Name: `${pick(WORDS)} deal ${n}`, AccountId: acc.length ? pick(acc) : null, StageName: pick(obj.fieldsByLower.get('stagename')!.picklistValues), Amount: Math.round(r() * 50_000_000) / 100,
            Probability: Math.floor(r() * 100), CloseDate: new Date(now + Math.floor((r() - 0.3) * 180) * 86_400_000).toISOString().slice(0, 10) });
          break;
        }
        case 'Case': {
          const acc = parents('Account'), con = parents('Contact');
          Object.assign(rec, { CaseNumber: pad(n, 8), Subject: `Issue ${n}: ${pick(['login fails', 'invoice wrong', 'slow page', 'feature request'])}`, Status: pick(['New', 'Working', 'Escalated', 'Closed']), Priority: pick(['High', 'Medium', 'Low']),
            Origin: pick(['Phone', 'Email', 'Web']), AccountId: acc.length ? pick(acc) : null, ContactId: con.length ? pick(con) : null });
          break;
        }
        case 'Invoice__c': {
          const acc = parents('Account');
          const status = pick(['Draft', 'Sent', 'Paid', 'Void']);
          Object.assign(rec, { Name: `INV-${pad(n)}`, External_Id__c: `INV-${pad(n)}`, Account__c: acc.length ? pick(acc) : null, Amount__c: Math.round(r() * 1_000_000) / 100, Status__c: status, Paid__c: status === 'Paid',
            Issued_On__c: new Date(now - Math.floor(r() * 365) * 86_400_000).toISOString().slice(0, 10) });
          break;
        }
        default: fill(obj, rec, n, r);
      }
      for (const f of obj.fields) if (!f.calculated && rec[f.name] === undefined && f.defaultValue != null) rec[f.name] = f.defaultValue;
      recs.push(rec);
      ids.push(id);
    }
    org.load(obj.name, recs);
    created.set(obj.name, [...(created.get(obj.name) ?? []), ...ids]);
  }
}

function fill(obj: ObjectMeta, rec: Rec, n: number, r: () => number): void {
  for (const f of obj.fields) {
    if (f.system || f.calculated || !f.createable) continue;
    if (f.nillable && !f.externalId && r() < 0.3) continue;
    rec[f.name] = sample(f, n, r);
  }
}

function sample(f: FieldMeta, n: number, r: () => number): unknown {
  switch (f.type) {
    case 'boolean': return r() < 0.5;
    case 'int': return Math.floor(r() * 1000);
    case 'double': case 'currency': case 'percent': return Math.round(r() * 100_000) / 100;
    case 'date': return new Date(Date.now() - Math.floor(r() * 365) * 86_400_000).toISOString().slice(0, 10);
    case 'datetime': return formatDateTime(Date.now() - Math.floor(r() * 365 * 86_400_000));
    case 'picklist': return f.picklistValues[Math.floor(r() * f.picklistValues.length)] ?? null;
    case 'email': return `user${n}@example.com`;
    case 'reference': return null;
    default: return `${f.name.replace(/__c$/, '')}-${pad(n)}`.slice(0, f.length);
  }
}
