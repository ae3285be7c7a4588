// JSON with exact integers. The API writes integers up to 2^64-1 exactly;
// JavaScript numbers hold integers exactly only up to 2^53. parseJSON
// keeps larger ones as BigInt (from the number's source text), and
// stringifyJSON writes BigInts back as plain JSON numbers.

const hasSource = (() => {
  try {
    let seen = false;
    JSON.parse('1', (k, v, ctx) => { seen = !!(ctx && ctx.source === '1'); return v; });
    return seen;
  } catch { return false; }
})();

/** parseJSON parses text, keeping integers beyond 2^53 as BigInt. */
export function parseJSON(text) {
  if (!hasSource) return JSON.parse(text);
  return JSON.parse(text, (k, v, ctx) => {
    if (typeof v === 'number' && !Number.isSafeInteger(v) && ctx && /^-?\d+$/.test(ctx.source)) {
      return BigInt(ctx.source);
    }
    return v;
  });
}

/** stringifyJSON writes v as JSON; BigInts become plain numbers. */
export function stringifyJSON(v, indent) {
  return JSON.stringify(v, (k, x) => {
    if (typeof x !== 'bigint') return x;
    if (typeof JSON.rawJSON === 'function') return JSON.rawJSON(x.toString());
    return x.toString();
  }, indent);
}
