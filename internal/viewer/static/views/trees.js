// The trees: names, record counts, schema versions.

import { get, follow } from '../api.js';
import { h, fill, fmtTime, messageBox } from '../dom.js';

export function mount(view, session) {
  const msg = messageBox();
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  fill(view, h('div', { class: 'head' }, h('h1', {}, 'Trees')), msg.el, body);
  let timer = null;
  const load = async () => {
    try {
      const list = await get('/v1/trees');
      if (!list || list.length === 0) {
        fill(body, h('p', { class: 'empty' }, 'No trees yet. A tree appears with its first record or schema (kvctl put TREE JSON).'));
        return;
      }
      fill(body, h('table', { class: 'grid', 'data-testid': 'trees-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Tree'), h('th', { class: 'num' }, 'Records'), h('th', {}, 'Schema versions'), h('th', {}, 'Created'))),
        h('tbody', {}, list.map((t) => h('tr', { 'data-testid': `tree-${t.name}` },
          h('td', {}, h('a', { href: `#/trees/${encodeURIComponent(t.name)}`, 'data-testid': `tree-link-${t.name}` }, t.name)),
          h('td', { class: 'num', 'data-testid': `tree-count-${t.name}` }, String(t.records)),
          h('td', {}, (t.schemas || []).length ? (t.schemas || []).map((v) => h('span', { class: 'chip' }, `v${v}`)) : h('span', { class: 'muted' }, 'none')),
          h('td', { class: 'muted' }, fmtTime(t.created)))))));
    } catch (err) { msg.error(err); }
  };
  load();
  // Counts change with creates and deletes anywhere: reload, at most
  // every half second.
  const sub = follow('', (ev) => {
    if (['created', 'deleted', 'schema'].includes(ev.type) && !timer) timer = setTimeout(() => { timer = null; load(); }, 500);
  }, load);
  return () => { sub.close(); clearTimeout(timer); };
}
