// The cluster as this node sees it: its status, the members with the
// leader and their gossip health, and the trees. Only this node's API is
// reachable from the page (same origin), so other members are shown as
// this node reports them. Refreshed every 5 s while shown.

import { get } from '../api.js';
import { h, fill, fmtTime, messageBox, badge } from '../dom.js';
import { section } from './common.js';

const REFRESH_MS = 5000;

export function mount(view, session) {
  const msg = messageBox();
  const body = h('div', { class: 'cluster' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(view, h('div', { class: 'head' }, h('h1', {}, 'Cluster'), h('span', { class: 'muted' }, 'as node ', h('strong', { 'data-testid': 'this-node' }, session.who.node || '?'), ' sees it')), msg.el, body);
  let timer = null;
  let stopped = false;

  const health = (m) => {
    const kind = { alive: 'ok', suspect: 'warn', dead: 'bad', left: 'muted' }[m.health] || 'muted';
    return badge(kind, m.health || 'unknown');
  };

  async function load() {
    try {
      const [st, members, trees, hz] = await Promise.all([
        get('/v1/status'), get('/v1/members'), get('/v1/trees'),
        fetch('/healthz', { cache: 'no-store' }).then(async (r) => ({ ok: r.ok, body: await r.json().catch(() => ({})) })).catch((err) => ({ ok: false, body: { status: err.message } })),
      ]);
      msg.clear();
      const leader = (members || []).find((m) => m.leader);
      fill(body,
        h('div', { class: 'cards' },
          h('div', { class: 'stat', 'data-testid': 'stat-leader' }, h('div', { class: 'stat-label' }, 'Leader'), h('div', { class: 'stat-value' }, st.leader || leader?.id || 'none'), st.no_leader ? badge('bad', 'no leader') : null),
          h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'This node'), h('div', { class: 'stat-value' }, st.node_id), h('div', { class: 'muted' }, st.state)),
          h('div', { class: 'stat', 'data-testid': 'stat-health' }, h('div', { class: 'stat-label' }, 'Health'), h('div', { class: 'stat-value' }, hz.ok ? 'ok' : 'unavailable'), h('div', { class: 'muted' }, '/healthz')),
          h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Applied index'), h('div', { class: 'stat-value' }, String(st.applied_index)), h('div', { class: 'muted' }, `commit ${st.commit_index} · term ${st.term}`)),
          h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, 'Members'), h('div', { class: 'stat-value' }, String((members || []).length)), h('div', { class: 'muted' }, `${(members || []).filter((m) => m.suffrage === 'Voter').length} voters`))),
        section('Members', h('table', { class: 'grid', 'data-testid': 'members-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', {}, 'Role'), h('th', {}, 'Health'), h('th', {}, 'Suffrage'), h('th', {}, 'HTTP'), h('th', {}, 'Raft'))),
          h('tbody', {}, (members || []).map((m) => h('tr', { 'data-testid': `member-${m.id}` },
            h('td', {}, h('strong', {}, m.id), m.id === st.node_id ? h('span', { class: 'muted' }, ' (this node)') : null),
            h('td', {}, m.leader ? badge('leader', 'leader', { 'data-testid': 'leader-badge' }) : h('span', { class: 'muted' }, 'follower')),
            h('td', {}, health(m)), h('td', {}, m.suffrage || h('span', { class: 'muted' }, 'not in raft')),
            h('td', { class: 'mono' }, m.http_addr || ''), h('td', { class: 'mono' }, m.raft_addr)))))),
        section('Trees', (trees || []).length ? h('table', { class: 'grid', 'data-testid': 'cluster-trees' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Tree'), h('th', { class: 'num' }, 'Records'), h('th', {}, 'Schema versions'), h('th', {}, 'Created'))),
          h('tbody', {}, trees.map((t) => h('tr', {},
            h('td', {}, h('a', { href: `#/trees/${encodeURIComponent(t.name)}` }, t.name)), h('td', { class: 'num' }, String(t.records)),
            h('td', {}, (t.schemas || []).map((v) => h('span', { class: 'chip' }, `v${v}`))), h('td', { class: 'muted' }, fmtTime(t.created))))))
          : h('p', { class: 'muted' }, 'No trees.')),
        h('p', { class: 'muted small' }, `Cluster ${st.cluster_id}`));
    } catch (err) { msg.error(err); }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  }
  load();
  return () => { stopped = true; clearTimeout(timer); };
}
