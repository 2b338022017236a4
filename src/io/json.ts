/**
 * JSON files whose errors never quote the file's text. `JSON.parse`'s messages include a piece of the
 * input (`Unexpected token 'r', "root:x:0:0"... is not valid JSON`), and a path may point at any file
 * (a symlink, a mistyped name): an error that reaches a log or an HTTP answer must name the file and the
 * position only.
 */

/** Offset of the first syntax error of `s` as strict JSON (RFC 8259), or -1 when it is valid JSON. */
export function jsonErrorOffset(s: string): number {
  let i = 0;
  const n = s.length;
  const stop = new Error('json');
  const fail = (): never => {
    throw stop;
  };
  const ws = () => {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const digit = () => i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39;
  const digits = () => {
    if (!digit()) fail();
    while (digit()) i++;
  };
  const string = () => {
    i++; // the opening quote
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        const e = s[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) i += 6;
        else {
          i++;
          fail();
        }
      } else i++;
    }
    fail();
  };
  const number = () => {
    if (s[i] === '-') i++;
    if (s[i] === '0') i++;
    else digits();
    if (s[i] === '.') {
      i++;
      digits();
    }
    if (s[i] === 'e' || s[i] === 'E') {
      i++;
      if (s[i] === '+' || s[i] === '-') i++;
      digits();
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (s[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (s[i] !== '"') fail();
          string();
          ws();
          if (s[i] !== ':') fail();
          i++;
        }
        value();
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === close) {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    if (c === '-' || digit()) return number();
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    fail();
  };
  try {
    value();
    ws();
    if (i < n) fail();
    return -1;
  } catch (e) {
    if (e === stop) return i;
    return -1; // nesting too deep to scan: position unknown
  }
}

/**
 * A value read from a file, as an error message may show it: JSON, cut to `max` characters (the value
 * of a field that is wrong helps, a long string of whatever the file holds does not).
 */
export function shownValue(v: unknown, max = 40): string {
  const s = v === undefined ? 'undefined' : JSON.stringify(v);
  return s.length <= max ? s : `${s.slice(0, max)}... (${s.length} characters)`;
}

/** "line L, column C" of a character offset (1-based). */
export function lineColumn(s: string, offset: number): string {
  let line = 1;
  let col = 1;
  for (let k = 0; k < offset && k < s.length; k++) {
    if (s.charCodeAt(k) === 0x0a) {
      line++;
      col = 1;
    } else col++;
  }
  return `line ${line}, column ${col}`;
}

/** What is wrong with invalid JSON text, by position only: "invalid JSON at line 1, column 1". */
export function invalidJsonMessage(text: string): string {
  if (text.length === 0) return 'invalid JSON: the file is empty';
  const at = jsonErrorOffset(text);
  if (at < 0) return 'invalid JSON';
  if (at >= text.length) return `invalid JSON: unexpected end of the text at ${lineColumn(text, at)}`;
  return `invalid JSON at ${lineColumn(text, at)}`;
}

/**
 * `JSON.parse(text)`; on a syntax error, throws `makeError(message)` with a message that gives the
 * position and never the text (the default error is `<file>: invalid JSON at line L, column C`).
 */
export function parseJsonText(text: string, file: string, makeError: (message: string) => Error = (m) => new Error(`${file}: ${m}`)): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw makeError(invalidJsonMessage(text));
  }
}
