import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { formatSeconds, progressBar } from './progress.js';

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

/** A stream that claims to be a terminal and keeps what is written. */
function fakeTerminal(): Writable & { isTTY: boolean; text: () => string; columns: number } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { isTTY: boolean; text: () => string; columns: number };
  w.isTTY = true;
  w.columns = 100;
  w.text = () => chunks.join('');
  return w;
}

describe('progressBar', () => {
  it('writes plain lines without escape sequences when NO_COLOR is set, even on a terminal', () => {
    for (const env of [{ NO_COLOR: '1' }, { TERM: 'dumb' }]) {
      const stream = fakeTerminal();
      const bar = progressBar(false, { stream, env });
      bar.update('train', 1, 4);
      bar.update('train', 4, 4);
      bar.stop();
      assert.match(stream.text(), /^train: 1\/4/m, JSON.stringify(env));
      assert.match(stream.text(), /^train: 4\/4/m);
      assert.doesNotMatch(stream.text(), /\u001b/);
    }
  });

  it('draws the bar (with cursor escapes) on a terminal otherwise', () => {
    const stream = fakeTerminal();
    const bar = progressBar(false, { stream, env: {} });
    bar.update('train', 1, 4);
    bar.stop();
    assert.match(stream.text(), /\u001b/);
  });
});
