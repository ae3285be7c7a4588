// Who holds what: every borrow, by client, and the registered clients.

import { get, follow } from '../api.js';
import { h, fill, fmtTime, ago, messageBox, keyStr } from '../dom.js';
import { section } from './common.js';

export function mount(view, session) {
  const msg = messageBox();
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  fill(view, h('div', { class: 'head' }, h('h1', {}, 'Borrows'), h('span', { class: 'muted' }, 'who holds what')), msg.el, body);
  let timer = null;

  async function load() {
    try {
      const [bs, clients] = await Promise.all([get('/v1/borrows'), get('/v1/clients')]);
      const names = new Map((clients || []).map((c) => [c.id, c.name]));
      const held = new Map();
      for (const b of bs || []) held.set(b.client, (held.get(b.client) || 0) + 1);
      const me = session.me();
      fill(body,
        section(`Borrows (${(bs || []).length})`, (bs || []).length ? h('table', { class: 'grid', 'data-testid': 'borrows-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Tree'), h('th', {}, 'Record'), h('th', {}, 'Held by'), h('th', {}, 'Since'), h('th', {}, 'Expires'))),
          h('tbody', {}, (bs || []).map((b) => h('tr', { 'data-testid': `borrow-${b.tree}-${b.key.id}-${b.key.rev}` },
            h('td', {}, h('a', { href: `#/trees/${encodeURIComponent(b.tree)}` }, b.tree)),
            h('td', {}, h('a', { href: `#/trees/${encodeURIComponent(b.tree)}/records/${b.key.id}/${b.key.rev}` }, keyStr(b.key))),
            h('td', { 'data-testid': 'holder' }, b.client_name || names.get(b.client) || b.client, b.client === me ? h('span', { class: 'muted' }, ' (you)') : null),
            h('td', { title: b.since }, `${fmtTime(b.since)} · ${ago(b.since)}`),
            h('td', { title: b.expires || '' }, b.expires ? `${fmtTime(b.expires)} · ${ago(b.expires)}` : 'never')))))
          : h('p', { class: 'empty', 'data-testid': 'no-borrows' }, 'Nobody holds a record.')),
        section(`Clients (${(clients || []).length})`, h('table', { class: 'grid', 'data-testid': 'clients-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Id'), h('th', { class: 'num' }, 'Borrows'), h('th', {}, 'Registered'), h('th', {}, 'Last seen'), h('th', { class: 'num' }, 'Replica index'))),
          h('tbody', {}, (clients || []).map((c) => h('tr', {},
            h('td', {}, h('strong', {}, c.name), c.id === me ? h('span', { class: 'muted' }, ' (this viewer)') : null),
            h('td', { class: 'mono small' }, c.id), h('td', { class: 'num' }, String(held.get(c.id) || 0)),
            h('td', {}, fmtTime(c.registered)), h('td', {}, c.last_seen ? ago(c.last_seen) : h('span', { class: 'muted' }, 'never')),
            h('td', { class: 'num' }, c.replica_index ? String(c.replica_index) : '')))))));
    } catch (err) { msg.error(err); }
  }
  load();
  const sub = follow('', (ev) => {
    if (['borrowed', 'returned', 'deleted', 'released', 'client', 'client_removed'].includes(ev.type) && !timer) {
      timer = setTimeout(() => { timer = null; load(); }, 200);
    }
  }, load);
  return () => { sub.close(); clearTimeout(timer); };
}
