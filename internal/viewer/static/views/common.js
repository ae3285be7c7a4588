// Pieces shared by the views.

import { get } from '../api.js';
import { h, badge } from '../dom.js';

let treeNames = null;

/** keyLinker loads the tree names once and returns keyLink(ref, key): the
 * href of the record a key field points to, or null. A key's schema names
 * the Go type of the records it points to (say Part); the tree is the one
 * named like it (part, parts, Part, partes...), ignoring case. */
export async function keyLinker() {
  if (!treeNames) {
    try { treeNames = (await get('/v1/trees')).map((t) => t.name); } catch { treeNames = []; }
  }
  const names = treeNames;
  return (ref, key) => {
    if (!ref || !key || !key.id) return null;
    const base = ref.replace(/\[.*$/, '').toLowerCase();
    const want = [base, base + 's', base + 'es', base.replace(/y$/, 'ies')];
    const tree = names.find((n) => want.includes(n.toLowerCase()));
    return tree ? `#/trees/${encodeURIComponent(tree)}/records/${key.id}${key.rev ? '/' + key.rev : ''}` : null;
  };
}

/** borrowBadge shows who holds a record: "borrowed by NAME", or "checked
 * out by you" for the viewer's own client. */
export function borrowBadge(b, names, me, key) {
  if (!b) return null;
  const name = b.client_name || names.get(b.client) || b.client;
  const testid = key ? `borrowed-${key.id}-${key.rev}` : 'borrowed';
  if (me && b.client === me) return badge('mine', 'checked out by you', { 'data-testid': testid, 'data-holder': name });
  return badge('borrowed', `borrowed by ${name}`, { 'data-testid': testid, 'data-holder': name, title: `client ${b.client}` });
}

/** errorText formats an API error (code: message) or any other error. */
export const errorText = (err) => (err && err.code ? `${err.code}: ${err.message}` : String(err && err.message ? err.message : err));

/** section is a titled block of a page. */
export const section = (title, ...children) => h('section', { class: 'card' }, h('h2', {}, title), ...children);
