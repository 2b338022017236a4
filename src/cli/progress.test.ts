import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatSeconds } from './progress.js';

describe('formatSeconds', () => {
  it('rounds before splitting into minutes and seconds', () => {
    assert.equal(formatSeconds(0.4), '0s');
    assert.equal(formatSeconds(59.6), '1m00s');
    assert.equal(formatSeconds(119.6), '2m00s');
    assert.equal(formatSeconds(125), '2m05s');
    assert.equal(formatSeconds(3599.7), '1h00m');
    assert.equal(formatSeconds(7260), '2h01m');
  });
});
