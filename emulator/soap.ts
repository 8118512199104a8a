// A minimal SOAP partner API: login() and logout() on /services/Soap/u/{version}[/{orgId}], for clients that sign in
// through SOAP (jsforce's conn.login without an OAuth client id). Every other operation is a SOAP fault.
import { VERSION_SET } from './api.js';

export const SOAP_TYPE = 'text/xml;charset=UTF-8';

/** SOAP login() is gone from API version 65.0 on (Winter '26); v31.0-v64.0 keep it until Summer '27. */
export const SOAP_LOGIN_LAST_VERSION = 64;

export interface SoapLoginUser {
  userId: string; username: string; email: string; fullName: string; orgId: string; orgName: string; profileId: string;
}

export interface SoapHost {
  /** A session for these credentials, or undefined when they are wrong. */
  login(username: string, password: string): { token: string; user: SoapLoginUser; secondsValid: number } | undefined;
  /** Ends the session; false when the token is not a live session. */
  logout(token: string): boolean;
}

const ENVELOPE_OPEN = '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sf="urn:fault.partner.soap.sforce.com">';
const ENVELOPE_CLOSE = '</soapenv:Envelope>';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const unesc = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/** The text of the first element with this local name (any namespace prefix). */
function element(xml: string, name: string): string | undefined {
  const m = new RegExp(`<(?:[\\w-]+:)?${name}(?:\\s[^>]*)?>([\\s\\S]*?)</(?:[\\w-]+:)?${name}>`).exec(xml);
  return m ? unesc(m[1]) : undefined;
}

export interface SoapResponse { status: number; body: string }

function fault(faultcode: string, exceptionCode: string, message: string, faultType = 'UnexpectedErrorFault'): SoapResponse {
  const detail = faultcode.startsWith('sf:')
    ? `<detail><sf:${faultType} xsi:type="sf:${faultType}"><sf:exceptionCode>${exceptionCode}</sf:exceptionCode><sf:exceptionMessage>${esc(message)}</sf:exceptionMessage></sf:${faultType}></detail>`
    : '';
  const faultstring = faultcode.startsWith('sf:') ? `${exceptionCode}: ${message}` : message;
  return { status: 500, body: `${ENVELOPE_OPEN}<soapenv:Body><soapenv:Fault><faultcode>${faultcode}</faultcode><faultstring>${esc(faultstring)}</faultstring>${detail}</soapenv:Fault></soapenv:Body>${ENVELOPE_CLOSE}` };
}

/** Handles POST /services/Soap/u/{version}[/{orgId}]. `base` is the URL the client reached. */
export function handleSoap(host: SoapHost, version: string, body: string, base: string): SoapResponse {
  if (!VERSION_SET.has(version)) return fault('sf:UNSUPPORTED_API_VERSION', 'UNSUPPORTED_API_VERSION', `Invalid Api version specified on URL`);
  const bodyXml = element(body, 'Body');
  if (bodyXml === undefined) return fault('soapenv:Client', '', 'Unable to find the SOAP Body element in the request');
  const op = /<(?:[\w-]+:)?([A-Za-z]+)[\s/>]/.exec(bodyXml.trim())?.[1];
  if (op === 'login') {
    if (Number(version) > SOAP_LOGIN_LAST_VERSION) {
      return fault('sf:INVALID_OPERATION', 'INVALID_OPERATION', `SOAP login() is not available in API version ${version}. Use OAuth 2.0 or API version ${SOAP_LOGIN_LAST_VERSION}.0 or earlier.`);
    }
    const s = host.login(element(bodyXml, 'username') ?? '', element(bodyXml, 'password') ?? '');
    if (!s) return fault('sf:INVALID_LOGIN', 'INVALID_LOGIN', 'Invalid username, password, security token; or user locked out.', 'LoginFault');
    const u = s.user;
    const result = [
      `<metadataServerUrl>${esc(`${base}/services/Soap/m/${version}/${u.orgId}`)}</metadataServerUrl>`,
      '<passwordExpired>false</passwordExpired><sandbox>false</sandbox>',
      `<serverUrl>${esc(`${base}/services/Soap/u/${version}/${u.orgId}`)}</serverUrl>`,
      `<sessionId>${esc(s.token)}</sessionId><userId>${u.userId}</userId>`,
      '<userInfo><accessibilityMode>false</accessibilityMode><chatterExternal>false</chatterExternal><currencySymbol>$</currencySymbol>',
      '<orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit><orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>',
      '<orgDefaultCurrencyLocale>en_US</orgDefaultCurrencyLocale><orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts>',
      `<organizationId>${u.orgId}</organizationId><organizationMultiCurrency>false</organizationMultiCurrency><organizationName>${esc(u.orgName)}</organizationName>`,
      `<profileId>${u.profileId}</profileId><roleId xsi:nil="true"/><sessionSecondsValid>${s.secondsValid}</sessionSecondsValid>`,
      `<userDefaultCurrencyIsoCode xsi:nil="true"/><userEmail>${esc(u.email)}</userEmail><userFullName>${esc(u.fullName)}</userFullName>`,
      `<userId>${u.userId}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale><userName>${esc(u.username)}</userName>`,
      '<userTimeZone>Etc/UTC</userTimeZone><userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo>',
    ].join('');
    return { status: 200, body: `${ENVELOPE_OPEN}<soapenv:Body><loginResponse><result>${result}</result></loginResponse></soapenv:Body>${ENVELOPE_CLOSE}` };
  }
  if (op === 'logout') {
    const token = element(body, 'sessionId') ?? '';
    if (!host.logout(token)) return fault('sf:INVALID_SESSION_ID', 'INVALID_SESSION_ID', 'Invalid Session ID found in SessionHeader: Illegal Session', 'UnexpectedErrorFault');
    return { status: 200, body: `${ENVELOPE_OPEN}<soapenv:Body><logoutResponse/></soapenv:Body>${ENVELOPE_CLOSE}` };
  }
  return fault('soapenv:Client', '', `No operation available for request {urn:partner.soap.sforce.com}${op ?? ''}, please check the WSDL for the service.`);
}
