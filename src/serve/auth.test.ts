import assert from 'node:assert/strict';
import { timingSafeEqual } from 'node:crypto';
import { describe, it } from 'node:test';
import { MIN_TOKEN_LENGTH, splitTokens, TokenSet, validateTokens, type ScopedToken } from './auth.js';

const W1 = 'write-token-aaaaaaaaaaaa';
const W2 = 'write-token-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const R1 = 'read-token-cccccccccccc';

describe('service tokens', () => {
  it('gives each presented token its scope; write tokens may read too', () => {
    const set = new TokenSet([{ token: W1, scope: 'write' }, { token: W2, scope: 'write' }, { token: R1, scope: 'read' }]);
    assert.equal(set.scopeOf(W1), 'write');
    assert.equal(set.scopeOf(W2), 'write');
    assert.equal(set.scopeOf(R1), 'read');
    for (const wrong of ['', 'x', W1.slice(0, -1), W1 + 'a', R1.toUpperCase(), 'z'.repeat(10_000)]) assert.equal(set.scopeOf(wrong), null, JSON.stringify(wrong.slice(0, 30)));
  });

  it('compares digests of equal length with every configured token, whatever the presented length, with no early exit', () => {
    const calls: [number, number][] = [];
    const counting = (a: Buffer, b: Buffer) => {
      calls.push([a.length, b.length]);
      return timingSafeEqual(a, b);
    };
    const tokens: ScopedToken[] = [{ token: W1, scope: 'write' }, { token: W2, scope: 'write' }, { token: R1, scope: 'read' }];
    const set = new TokenSet(tokens, counting);
    // The old check compared lengths first: a presented token of another length never reached timingSafeEqual.
    for (const presented of ['', 'a', 'b'.repeat(W1.length), 'c'.repeat(W2.length), 'd'.repeat(1000), W1, W2, R1]) {
      calls.length = 0;
      set.scopeOf(presented);
      assert.deepEqual(calls, [[32, 32], [32, 32], [32, 32]], `${presented.length} characters: one comparison per token, of two 32-byte HMAC-SHA-256 digests`);
    }
  });

  it('refuses short, malformed, repeated tokens and a set without a write token, without quoting them', () => {
    const refused = (tokens: ScopedToken[], message: RegExp) =>
      assert.throws(() => validateTokens(tokens, 'serve'), (e: Error) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, message);
        for (const t of tokens) assert.ok(!e.message.includes(t.token), 'the token is not in the message');
        return true;
      });
    assert.equal(MIN_TOKEN_LENGTH, 16);
    refused([{ token: '%', scope: 'write' }], /^serve: the write token 1 has 1 characters; a token needs at least 16/);
    refused([{ token: W1, scope: 'write' }, { token: 'r'.repeat(15), scope: 'read' }], /^serve: the read token 1 has 15 characters; a token needs at least 16/);
    refused([{ token: 'has space in it 0123', scope: 'write' }], /the write token 1 may hold only letters, digits and - \. _ ~ \+ \//);
    refused([{ token: W1, scope: 'write' }, { token: W1, scope: 'read' }], /the read token 1 is given twice/);
    refused([{ token: R1, scope: 'read' }], /give at least one write token/);
    validateTokens([{ token: 'a'.repeat(16), scope: 'write' }, { token: 'A0-._~+/b'.repeat(2) + '==', scope: 'read' }]);
    assert.throws(() => new TokenSet([{ token: 'short', scope: 'write' }]), /at least 16/);
  });

  it('splits an environment variable into tokens', () => {
    assert.deepEqual(splitTokens(` ${W1},${W2}\n${R1} `), [W1, W2, R1]);
    assert.deepEqual(splitTokens(undefined), []);
  });
});
