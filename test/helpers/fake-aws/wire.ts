/**
 * Wire formats of the three AWS protocols the SDK clients speak (as installed: Auto Scaling uses
 * awsQuery, EC2 ec2Query, EC2 Instance Connect awsJson1_1):
 * - requests of both query protocols are form-encoded POST bodies; lists are `Name.member.N`
 *   (awsQuery) or `Name.N` (ec2Query), structures `Name.Field`;
 * - awsQuery replies `<XResponse><XResult>…</XResult><ResponseMetadata>` with list items as
 *   `<member>`; errors `<ErrorResponse><Error><Type><Code><Message>`;
 * - ec2Query replies `<XResponse><requestId>…` with camelCase elements and list items as `<item>`;
 *   errors `<Response><Errors><Error><Code><Message></Error></Errors><RequestID>`.
 */

/** An AWS error answer: the code the SDK turns into the error's `name`, and the HTTP status. */
export class AwsFault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'AwsFault';
  }
}

export const validation = (message: string): AwsFault => new AwsFault('ValidationError', message);

/** Form parameters of one query request, with the list/struct readers both protocols need. */
export class QueryParams {
  constructor(private readonly form: URLSearchParams) {}

  get(key: string): string | undefined {
    return this.form.get(key) ?? undefined;
  }

  int(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n))
      throw validation(`Value '${v}' at '${key}' failed to satisfy constraint: integer`);
    return n;
  }

  bool(key: string): boolean | undefined {
    const v = this.get(key);
    return v === undefined ? undefined : v === 'true';
  }

  /** True when any key is `prefix` or starts with `prefix.`. */
  has(prefix: string): boolean {
    for (const k of this.form.keys()) if (k === prefix || k.startsWith(`${prefix}.`)) return true;
    return false;
  }

  /**
   * Prefixes of the items of a list, in index order: `listPrefixes('Tags.member')` gives
   * `['Tags.member.1', 'Tags.member.2']`.
   */
  listPrefixes(prefix: string): string[] {
    const indices = new Set<number>();
    const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)(\\.|$)`);
    for (const k of this.form.keys()) {
      const m = re.exec(k);
      if (m) indices.add(Number(m[1]));
    }
    return [...indices].sort((a, b) => a - b).map((i) => `${prefix}.${i}`);
  }

  /** The scalar items of a list (`Names.member.N` or `InstanceId.N`). */
  list(prefix: string): string[] {
    return this.listPrefixes(prefix).flatMap((p) => {
      const v = this.get(p);
      return v === undefined ? [] : [v];
    });
  }
}

export type XmlValue = string | number | boolean | Date | undefined | null | XmlValue[] | XmlObject;
export interface XmlObject {
  [key: string]: XmlValue;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : c === "'" ? '&apos;' : '&quot;',
  );
}

/** Serialises a value as the children of an element; arrays become `<itemTag>` items. */
export function toXml(value: XmlValue, itemTag: 'member' | 'item'): string {
  if (value === undefined || value === null) return '';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => `<${itemTag}>${toXml(v, itemTag)}</${itemTag}>`).join('');
  if (typeof value === 'object') {
    return Object.entries(value)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `<${k}>${toXml(v, itemTag)}</${k}>`)
      .join('');
  }
  return escapeXml(String(value));
}

export const ASG_XMLNS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

/** An awsQuery success reply; `result` undefined means the action has no output. */
export function asgResponse(action: string, requestId: string, result: XmlObject | undefined): string {
  const body = result === undefined ? '' : `<${action}Result>${toXml(result, 'member')}</${action}Result>`;
  return (
    `<${action}Response xmlns="${ASG_XMLNS}">${body}` +
    `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`
  );
}

export function asgError(fault: AwsFault, requestId: string): string {
  const type = fault.status >= 500 ? 'Receiver' : 'Sender';
  return (
    `<ErrorResponse xmlns="${ASG_XMLNS}"><Error><Type>${type}</Type><Code>${escapeXml(fault.code)}</Code>` +
    `<Message>${escapeXml(fault.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`
  );
}

/** An ec2Query success reply. */
export function ec2Response(action: string, requestId: string, result: XmlObject): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}">` +
    `<requestId>${requestId}</requestId>${toXml(result, 'item')}</${action}Response>`
  );
}

export function ec2Error(fault: AwsFault, requestId: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(fault.code)}</Code>` +
    `<Message>${escapeXml(fault.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
  );
}

/** Page of `items` starting at the opaque `token` (an offset here, like AWS's opaque strings). */
export function paginate<T>(
  items: T[],
  size: number,
  token: string | undefined,
): { page: T[]; next?: string } {
  let start = 0;
  if (token !== undefined) {
    const decoded = Number(
      Buffer.from(token, 'base64url')
        .toString('utf8')
        .replace(/^offset:/, ''),
    );
    if (!Number.isInteger(decoded) || decoded < 0)
      throw new AwsFault('InvalidNextToken', 'The token is invalid');
    start = decoded;
  }
  const end = start + size;
  const page = items.slice(start, end);
  return end < items.length ? { page, next: Buffer.from(`offset:${end}`).toString('base64url') } : { page };
}
