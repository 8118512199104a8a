// describeGlobal / describe payloads shaped like a real org's.
import type { FieldMeta, ObjectMeta, OrgMeta } from './schema.js';

const SOAP: Record<string, string> = {
  id: 'tns:ID', reference: 'tns:ID', boolean: 'xsd:boolean', int: 'xsd:int', double: 'xsd:double', currency: 'xsd:double', percent: 'xsd:double',
  date: 'xsd:date', datetime: 'xsd:dateTime',
};

function urls(o: ObjectMeta, v: string) {
  const base = `/services/data/v${v}/sobjects/${o.name}`;
  return { compactLayouts: `${base}/describe/compactLayouts`, rowTemplate: `${base}/{ID}`, approvalLayouts: `${base}/describe/approvalLayouts`,
    uiDetailTemplate: null, uiEditTemplate: null, defaultValues: `${base}/defaultValues?recordTypeId&fields`, listviews: `${base}/listviews`,
    describe: `${base}/describe`, uiNewRecord: null, quickActions: `${base}/quickActions`, layouts: `${base}/describe/layouts`, sobject: base };
}

function globalEntry(o: ObjectMeta, v: string) {
  const isUser = o.name === 'User';
  return {
    activateable: false, associateEntityType: null, associateParentEntity: null, createable: !isUser, custom: o.custom, customSetting: false,
    deepCloneable: false, deletable: !isUser, deprecatedAndHidden: false, feedEnabled: !o.custom, hasSubtypes: false, isInterface: false,
    isSubtype: false, keyPrefix: o.keyPrefix, label: o.label, labelPlural: o.labelPlural, layoutable: true, mergeable: ['Account', 'Contact', 'Lead'].includes(o.name),
    mruEnabled: true, name: o.name, queryable: true, replicateable: true, retrieveable: true, searchable: true, triggerable: true,
    undeletable: !isUser, updateable: true, urls: { ...(o.custom ? {} : {}), sobject: `/services/data/v${v}/sobjects/${o.name}`, describe: `/services/data/v${v}/sobjects/${o.name}/describe`, rowTemplate: `/services/data/v${v}/sobjects/${o.name}/{ID}` },
  };
}

export function describeGlobal(org: OrgMeta, v: string) {
  return { encoding: 'UTF-8', maxBatchSize: 200, sobjects: org.ordered.map((o) => globalEntry(o, v)) };
}

function fieldDescribe(f: FieldMeta) {
  const text = !['id', 'reference', 'boolean', 'int', 'double', 'currency', 'percent', 'date', 'datetime'].includes(f.type);
  const lengthish = text || f.type === 'id' || f.type === 'reference';
  return {
    aggregatable: f.type !== 'textarea', aiPredictionField: false, autoNumber: false,
    byteLength: lengthish ? f.length * 3 : 0,
    calculated: f.calculated, calculatedFormula: f.calculated ? (f.formula ?? null) : null,
    cascadeDelete: false, caseSensitive: f.caseSensitive, compoundFieldName: null, controllerName: null,
    createable: f.createable, custom: f.custom, defaultValue: f.type === 'boolean' ? (f.defaultValue ?? false) : (f.defaultValue ?? null),
    defaultValueFormula: null, defaultedOnCreate: f.defaultedOnCreate, dependentPicklist: false, deprecatedAndHidden: false,
    digits: f.type === 'int' ? 9 : 0, displayLocationInDecimal: false, encrypted: false, externalId: f.externalId, extraTypeInfo: null,
    filterable: f.type !== 'textarea', filteredLookupInfo: null, formulaTreatNullNumberAsZero: false, groupable: !['datetime', 'textarea', 'double', 'currency', 'percent'].includes(f.type),
    highScaleNumber: false, htmlFormatted: false, idLookup: f.idLookup, inlineHelpText: null, label: f.label,
    length: lengthish ? f.length : 0, mask: null, maskType: null, name: f.name, nameField: f.nameField, namePointing: f.name === 'OwnerId',
    nillable: f.nillable, permissionable: f.custom && f.nillable, picklistValues: f.picklistValues.map((v) => ({ active: true, defaultValue: f.defaultValue === v, label: v, validFor: null, value: v })),
    polymorphicForeignKey: f.name === 'OwnerId', precision: ['double', 'currency', 'percent'].includes(f.type) ? f.precision : 0, queryByDistance: false, referenceTargetField: null,
    referenceTo: f.referenceTo, relationshipName: f.relationshipName, relationshipOrder: null, restrictedDelete: false,
    restrictedPicklist: f.restrictedPicklist, scale: ['double', 'currency', 'percent'].includes(f.type) ? f.scale : 0, searchPrefilterable: false,
    soapType: SOAP[f.type] ?? 'xsd:string', sortable: f.type !== 'textarea', type: f.type, unique: f.unique, updateable: f.updateable,
    writeRequiresMasterRead: false,
  };
}

export function describe(o: ObjectMeta, v: string) {
  return {
    actionOverrides: [], activateable: false, associateEntityType: null, associateParentEntity: null,
    childRelationships: o.childRelationships.map((c) => ({ cascadeDelete: false, childSObject: c.childSObject, deprecatedAndHidden: false, field: c.field, junctionIdListNames: [], junctionReferenceTo: [], relationshipName: c.relationshipName, restrictedDelete: false })),
    compactLayoutable: true, createable: o.name !== 'User', custom: o.custom, customSetting: false, deepCloneable: false, defaultImplementation: null,
    deletable: o.name !== 'User', deprecatedAndHidden: false, extendedBy: null, extendsInterfaces: null, feedEnabled: !o.custom,
    fields: o.fields.map(fieldDescribe), hasSubtypes: false, implementedBy: null, implementsInterfaces: null, isInterface: false, isSubtype: false,
    keyPrefix: o.keyPrefix, label: o.label, labelPlural: o.labelPlural, layoutable: true, listviewable: null, lookupLayoutable: null,
    mergeable: ['Account', 'Contact', 'Lead'].includes(o.name), mruEnabled: true, name: o.name, namedLayoutInfos: [], networkScopeFieldName: null,
    queryable: true, recordTypeInfos: [{ active: true, available: true, defaultRecordTypeMapping: true, developerName: 'Master', master: true, name: 'Master', recordTypeId: '012000000000000AAA', urls: { layout: `/services/data/v${v}/sobjects/${o.name}/describe/layouts/012000000000000AAA` } }],
    replicateable: true, retrieveable: true, searchLayoutable: true, searchable: true, sobjectDescribeOption: 'FULL', supportedScopes: [{ label: 'All ' + o.labelPlural.toLowerCase(), name: 'everything' }],
    triggerable: true, undeletable: o.name !== 'User', updateable: true, urls: urls(o, v),
  };
}
