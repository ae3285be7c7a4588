// A CBOR encoder for record values, matching what the node's own encoder
// (ugorji codec, canonical, times as RFC 3339 text under tag 0) writes for
// the same value. Input values: null, booleans, numbers (whole ones become
// integers, as the API does for JSON), BigInt, strings, Uint8Array (a byte
// string), arrays, Map (keys of any of these kinds, sorted by their encoded
// bytes) and plain objects (string keys), and CborTime (a time).

/** CborTime is a time to be written as an RFC 3339 string under tag 0. */
export class CborTime {
  constructor(text) { this.text = text; }
}

/** encodeCBOR returns the CBOR bytes of v. */
export function encodeCBOR(v) {
  const out = [];
  write(out, v);
  return new Uint8Array(out);
}

const enc = new TextEncoder();

function head(out, major, n) {
  // n: a non-negative number or BigInt
  const m = major << 5;
  const b = BigInt(n);
  if (b < 24n) { out.push(m | Number(b)); return; }
  if (b < 0x100n) { out.push(m | 24, Number(b)); return; }
  if (b < 0x10000n) { out.push(m | 25, Number(b >> 8n), Number(b & 0xffn)); return; }
  const bytes = b < 0x100000000n ? 4 : 8;
  out.push(m | (bytes === 4 ? 26 : 27));
  for (let i = bytes - 1; i >= 0; i--) out.push(Number((b >> BigInt(8 * i)) & 0xffn));
}

function writeInt(out, n) {
  const b = BigInt(n);
  if (b >= 0n) {
    if (b > 0xffffffffffffffffn) throw new Error(`integer ${b} is out of range`);
    head(out, 0, b);
  } else {
    const m = -1n - b;
    if (m > 0xffffffffffffffffn) throw new Error(`integer ${b} is out of range`);
    head(out, 1, m);
  }
}

function write(out, v) {
  if (v === null || v === undefined) { out.push(0xf6); return; }
  if (v === false) { out.push(0xf4); return; }
  if (v === true) { out.push(0xf5); return; }
  if (typeof v === 'bigint') { writeInt(out, v); return; }
  if (typeof v === 'number') {
    if (Number.isInteger(v)) { writeInt(out, v); return; }
    if (!Number.isFinite(v)) throw new Error(`${v} cannot be stored`);
    const buf = new DataView(new ArrayBuffer(8));
    buf.setFloat64(0, v);
    out.push(0xfb);
    for (let i = 0; i < 8; i++) out.push(buf.getUint8(i));
    return;
  }
  if (typeof v === 'string') {
    const b = enc.encode(v);
    head(out, 3, b.length);
    for (const x of b) out.push(x);
    return;
  }
  if (v instanceof CborTime) {
    out.push(0xc0); // tag 0: an RFC 3339 date/time string
    write(out, v.text);
    return;
  }
  if (v instanceof Uint8Array) {
    head(out, 2, v.length);
    for (const x of v) out.push(x);
    return;
  }
  if (Array.isArray(v)) {
    head(out, 4, v.length);
    for (const e of v) write(out, e);
    return;
  }
  const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
  const strKeys = entries.every(([k]) => typeof k === 'string');
  const encoded = entries.map(([k, e]) => {
    const kb = [];
    write(kb, k);
    // Canonical order, as the node's encoder writes it: string keys by
    // their UTF-8 bytes, other keys by their encoded bytes.
    return { sortKey: strKeys ? enc.encode(k) : kb, kb, e };
  });
  encoded.sort((a, b) => cmpBytes(a.sortKey, b.sortKey));
  head(out, 5, encoded.length);
  for (const { kb, e } of encoded) {
    for (const x of kb) out.push(x);
    write(out, e);
  }
}

function cmpBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
