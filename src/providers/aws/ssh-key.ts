/**
 * The per-manager ephemeral SSH key pushed with EC2 Instance Connect. Generated in memory with
 * node:crypto and encoded by hand in OpenSSH's formats (`ssh-ed25519 AAAA… comment` for the public
 * key, `-----BEGIN OPENSSH PRIVATE KEY-----` for the private one, which both OpenSSH and ssh2 read).
 * It is never written to disk; the private half hides from JSON and `util.inspect` so it cannot
 * leak into logs by accident.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';

const KEY_TYPE = 'ssh-ed25519';

/** SSH wire `string`: uint32 big-endian length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function publicBlob(publicKey: Buffer): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(publicKey)]);
}

/** `openssh-key-v1`, unencrypted, one key (the format of PROTOCOL.key in OpenSSH). */
function openSshPrivateKey(seed: Buffer, publicKey: Buffer, comment: string): string {
  const check = randomBytes(4).readUInt32BE();
  let secret = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString(KEY_TYPE),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString(comment),
  ]);
  const padding = Buffer.from(Array.from({ length: (8 - (secret.length % 8)) % 8 }, (_v, i) => i + 1));
  secret = Buffer.concat([secret, padding]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(publicBlob(publicKey)),
    sshString(secret),
  ]).toString('base64');
  const lines = body.match(/.{1,70}/g) ?? [];
  return ['-----BEGIN OPENSSH PRIVATE KEY-----', ...lines, '-----END OPENSSH PRIVATE KEY-----', ''].join(
    '\n',
  );
}

/** An in-memory ed25519 key pair; `publicKey` is safe to show, `privateKeyPem()` is not. */
export class EphemeralSshKey {
  readonly publicKey: string;
  readonly #privateKey: string;

  private constructor(publicKey: string, privateKey: string) {
    this.publicKey = publicKey;
    this.#privateKey = privateKey;
  }

  /** Generates a fresh key; `comment` ends the public key line (e.g. the manager id). */
  static generate(comment = 'runfleet'): EphemeralSshKey {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
    const safeComment = comment.replace(/\s+/g, '-');
    const line = `${KEY_TYPE} ${publicBlob(pub).toString('base64')} ${safeComment}`;
    return new EphemeralSshKey(line, openSshPrivateKey(seed, pub, safeComment));
  }

  /** The private key in OpenSSH PEM form. Hand it only to the SSH client. */
  privateKeyPem(): string {
    return this.#privateKey;
  }

  toJSON(): { publicKey: string } {
    return { publicKey: this.publicKey };
  }

  [inspect.custom](): string {
    return `EphemeralSshKey(${this.publicKey})`;
  }
}
