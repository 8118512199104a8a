// A self-signed certificate made at start, for the emulator's TLS listeners (clients accept it by configuration:
// NODE_EXTRA_CA_CERTS, a CA option, or by turning verification off).
import selfsigned from 'selfsigned';

export interface TlsMaterial { key: string; cert: string; fingerprint: string }

let cached: Promise<TlsMaterial> | undefined;

/** One certificate per process, valid for localhost, 127.0.0.1 and ::1 (and `host` when it is another name). */
export function selfSignedCertificate(host?: string): Promise<TlsMaterial> {
  const extra = host && !['localhost', '127.0.0.1', '::1', '0.0.0.0', '::'].includes(host) ? host : undefined;
  if (cached && !extra) return cached;
  const names: Array<{ type: 2 | 7; value?: string; ip?: string }> = [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }];
  if (extra) names.push(/^[\d.]+$|:/.test(extra) ? { type: 7, ip: extra } : { type: 2, value: extra });
  const made = selfsigned.generate([{ name: 'commonName', value: 'hcsync-emulator' }], {
    keySize: 2048, algorithm: 'sha256', notAfterDate: new Date(Date.now() + 365 * 86_400_000),
    extensions: [{ name: 'basicConstraints', cA: true }, { name: 'subjectAltName', altNames: names }],
  }).then((p) => ({ key: p.private, cert: p.cert, fingerprint: p.fingerprint }));
  if (!extra) cached = made;
  return made;
}
