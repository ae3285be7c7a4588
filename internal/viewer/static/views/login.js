// Log in with an API token (kept in this tab's sessionStorage only).

import { h, fill, messageBox } from '../dom.js';

export function mount(view, ctx) {
  const msg = messageBox('login-message');
  const tok = h('input', { type: 'password', class: 'in', id: 'token', autocomplete: 'off', placeholder: 'shelf_…', 'data-testid': 'login-token', required: true });
  const btn = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'login-submit' }, 'Log in');
  const form = h('form', { class: 'login card', 'data-testid': 'login-form' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'This node runs with authentication. Paste an API token: a reader token shows everything read-only; a writer or admin token can edit records.'),
    msg.el,
    h('label', { for: 'token', class: 'lbl-block' }, 'API token'), tok, btn,
    h('p', { class: 'muted small' }, 'The token stays in this browser tab (sessionStorage) and goes to this node only, in the Authorization header. An admin creates tokens with ', h('code', {}, 'kvctl tokens create NAME --role writer'), '.'));
  fill(view, form);
  if (ctx.note) msg.show(ctx.note.startsWith('The node refused') ? 'error' : 'info', ctx.note);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    try {
      await ctx.onLogin(tok.value.trim());
    } catch (err) {
      msg.error(err);
    } finally {
      btn.disabled = false;
    }
  });
  tok.focus();
  return () => {};
}
