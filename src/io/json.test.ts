import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { invalidJsonMessage, jsonErrorOffset, parseJsonText, shownValue } from './json.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';

describe('JSON errors by position only', () => {
  it('finds the offset of the first syntax error, and -1 for valid JSON', () => {
    for (const ok of ['{}', '[]', ' {"a": [1, -2.5e3, true, null, "x\\u00e9\\n"]} ', '0', '"s"', '{"a":{"b":[[],{}]}}']) assert.equal(jsonErrorOffset(ok), -1, ok);
    const cases: [string, number][] = [
      [PASSWD, 0],
      ['{"a": 1,}', 8],
      ['{"a" 1}', 5],
      ['{"a": tru}', 6],
      ['{"a": 1} x', 9],
      ['{"a": "b', 8],
      ['[1, 2', 5],
      ['{"a": 01}', 7],
      ['{"a": "x\ty"}', 8],
      ['{"a": "\\q"}', 8],
      ['[1.]', 3],
      ['\uFEFF{}', 0],
    ];
    for (const [text, at] of cases) assert.equal(jsonErrorOffset(text), at, JSON.stringify(text));
    // Where V8 gives a position, it is the same one.
    for (const [text, at] of cases) {
      try {
        JSON.parse(text);
      } catch (e) {
        const m = /at position (\d+)/.exec((e as Error).message);
        if (m) assert.equal(Number(m[1]), at, JSON.stringify(text));
      }
    }
  });

  it('never quotes the text (JSON.parse does: `Unexpected token \'r\', "root:x:0:0"...`)', () => {
    assert.throws(() => JSON.parse(PASSWD), /root:x:0:0/, 'the reason for this module');
    assert.equal(invalidJsonMessage(PASSWD), 'invalid JSON at line 1, column 1');
    assert.equal(invalidJsonMessage('{\n  "a": 1,\n  "b": secret\n}'), 'invalid JSON at line 3, column 8');
    assert.equal(invalidJsonMessage('{"a": '), 'invalid JSON: unexpected end of the text at line 1, column 7');
    assert.equal(invalidJsonMessage(''), 'invalid JSON: the file is empty');
    assert.throws(() => parseJsonText(PASSWD, '/models/x/llmrec.json'), (e: Error) => {
      assert.equal(e.message, '/models/x/llmrec.json: invalid JSON at line 1, column 1');
      return true;
    });
    assert.deepEqual(parseJsonText('{"a": [1]}', 'f'), { a: [1] });
  });

  it('shows a value read from a file cut short', () => {
    assert.equal(shownValue(1000000), '1000000');
    assert.equal(shownValue('gpt2'), '"gpt2"');
    assert.equal(shownValue(undefined), 'undefined');
    assert.equal(shownValue('x'.repeat(100)), `"${'x'.repeat(39)}... (102 characters)`);
  });
});
