import assert from 'node:assert/strict';
import { it } from 'node:test';
import { withDefaults } from './options.js';

it('withDefaults keeps a default when the option is undefined, and takes null, 0 and false', () => {
  const d = { a: 1, b: 'x', c: true as boolean | null };
  assert.deepEqual(withDefaults(d, { a: undefined, b: 'y' }), { a: 1, b: 'y', c: true });
  assert.deepEqual(withDefaults(d, { a: 0, c: null }), { a: 0, b: 'x', c: null });
  assert.deepEqual(withDefaults(d, undefined), d);
});
