/**
 * Bearer tokens of the service, each with a scope: `write` tokens may call every route, `read` tokens the
 * read routes only. A presented token is checked in constant time without leaking its length: it and
 * every configured token are reduced to HMAC-SHA-256 digests (32 bytes each, under a key drawn at start)
 * and compared with `timingSafeEqual`, all of them, whatever the presented token's length and whether an
 * earlier one matched.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type TokenScope = 'read' | 'write';

export interface ScopedToken {
  token: string;
  scope: TokenScope;
}

/** The shortest token accepted (characters). */
export const MIN_TOKEN_LENGTH = 16;
/** RFC 6750's b64token: the characters a bearer token may hold. */
const TOKEN_CHARS = /^[A-Za-z0-9\-._~+/]+=*$/;

/** Checks the tokens a service is configured with; the message names the token by scope and position, never its text. */
export function validateTokens(tokens: readonly ScopedToken[], where = 'token'): void {
  if (!tokens.some((t) => t.scope === 'write')) throw new RangeError(`${where}: give at least one write token (--token or $EVOREC_TOKEN): write routes need one`);
  const seen = new Set<string>();
  const count = { read: 0, write: 0 };
  for (const t of tokens) {
    const name = `${t.scope} token ${++count[t.scope]}`;
    if (t.scope !== 'read' && t.scope !== 'write') throw new RangeError(`${where}: unknown scope ${JSON.stringify(t.scope)} (read, write)`);
    if (t.token.length < MIN_TOKEN_LENGTH) throw new RangeError(`${where}: the ${name} has ${t.token.length} characters; a token needs at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`);
    if (!TOKEN_CHARS.test(t.token)) throw new RangeError(`${where}: the ${name} may hold only letters, digits and - . _ ~ + / (then = padding), as RFC 6750 bearer tokens do`);
    if (seen.has(t.token)) throw new RangeError(`${where}: the ${name} is given twice`);
    seen.add(t.token);
  }
}

export class TokenSet {
  private readonly key = randomBytes(32);
  private readonly entries: { digest: Buffer; scope: TokenScope }[];

  /** `equal` is the comparison (timingSafeEqual; a test may count its calls). */
  constructor(
    tokens: readonly ScopedToken[],
    private readonly equal: (a: Buffer, b: Buffer) => boolean = timingSafeEqual,
  ) {
    validateTokens(tokens);
    this.entries = tokens.map((t) => ({ digest: this.digest(t.token), scope: t.scope }));
  }

  private digest(s: string): Buffer {
    return createHmac('sha256', this.key).update(s, 'utf8').digest();
  }

  /** The scope of a presented token (write when it is a write token, read when a read token), or null. */
  scopeOf(presented: string): TokenScope | null {
    const d = this.digest(presented);
    let scope: TokenScope | null = null;
    for (const e of this.entries) {
      const match = this.equal(d, e.digest);
      if (match && scope !== 'write') scope = e.scope;
    }
    return scope;
  }
}

/** Tokens from a list of strings separated by commas or white space (an environment variable). */
export function splitTokens(s: string | undefined): string[] {
  return (s ?? '').split(/[\s,]+/).filter((t) => t.length > 0);
}
