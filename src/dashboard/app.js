// The hookhub dashboard: a small page over the JSON API.
//
// Everything shown is built with DOM calls and textContent, never by parsing markup:
// webhook names, event names, headers and bodies come from strangers.
'use strict';

(function () {
  const STATUSES = ['queued', 'sent', 'acked', 'failed', 'rejected', 'duplicate', 'expired'];
  // What a redeliver by filter may take; the first is its default.
  const REDELIVERABLE = ['failed', 'acked', 'expired'];
  const PROVIDERS = [
    ['generic', 'Generic (Standard Webhooks)'],
    ['github', 'GitHub'],
    ['stripe', 'Stripe'],
    ['slack', 'Slack'],
  ];
  const AGENTS_REFRESH_MS = 5000;
  const BODY_SHOWN = 200000;
  // An agent's backlog counts both: true of an offline agent and of a slow one.
  const BACKLOG_MEANS = 'Deliveries queued for the agent, or sent to it and not yet acknowledged';

  const state = {
    session: null,
    // Undone when the view changes: timers, live streams.
    cleanups: [],
  };

  // ---- DOM ----------------------------------------------------------------------------

  // h('tag', {attrs}, ...children): strings become text nodes; `on*` props are listeners.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'class') {
        el.className = value;
      } else if (key === 'dataset') {
        Object.assign(el.dataset, value);
      } else if (key === 'value' || key === 'checked' || key === 'disabled') {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function $(id) {
    return document.getElementById(id);
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function replace(el, ...children) {
    clear(el);
    append(el, children);
  }

  // ---- Messages -----------------------------------------------------------------------

  let noticeTimer = null;

  function showError(message) {
    const el = $('error');
    el.textContent = message;
    el.hidden = false;
    window.scrollTo({ top: 0 });
  }

  function clearMessages() {
    $('error').hidden = true;
    $('error').textContent = '';
    $('notice').hidden = true;
  }

  function showNotice(message) {
    const el = $('notice');
    el.textContent = message;
    el.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  // What the API calls its fields, as this page names them.
  const FIELD_NAMES = { name: 'name', provider: 'provider', secret: 'provider secret', token: 'token' };

  function describe(err) {
    if (!(err instanceof ApiError)) {
      return 'The hub could not be reached. Check that it is running, then try again.';
    }
    // The API quotes field names in backticks (`name` must not be empty): say them plainly.
    let text = String(err.message || '').replace(/`([^`]*)`/g, (_, word) => FIELD_NAMES[word] || word);
    const field = err.field && (FIELD_NAMES[err.field] || err.field);
    if (field && !text.toLowerCase().includes(field.toLowerCase())) text = `${field}: ${text}`;
    text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?]$/.test(text) ? text : text + '.';
  }

  // An API error from a form: said in the banner, and the field at fault marked.
  function showFormError(err, form) {
    if (err instanceof ApiError && err.status === 401) return;
    showError(describe(err));
    const input = err instanceof ApiError && err.field
      ? form.querySelector(`[name="${CSS.escape(err.field)}"]`) : null;
    if (!input) return;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'error');
    input.addEventListener('input', () => {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }, { once: true });
    input.focus();
  }

  // ---- API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET' && state.session) headers['X-CSRF-Token'] = state.session.csrfToken;
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!res.ok) {
      const e = data && data.error ? data.error
        : { code: 'http_' + res.status, message: `The hub answered ${res.status}.` };
      const err = new ApiError(res.status, e.code, e.message, e.field);
      if (res.status === 401 && path !== '/dashboard/session') sessionEnded();
      throw err;
    }
    return data;
  }

  const enc = encodeURIComponent;
  const agentPath = (agentId) => `/v1/agents/${enc(agentId)}`;
  const webhookPath = (agentId, webhookId) => `${agentPath(agentId)}/webhooks/${enc(webhookId)}`;

  // ---- Formatting ---------------------------------------------------------------------

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  }

  // A time in a list of recent ones: without the date when it is today.
  function fmtRecent(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) {
      return d.toLocaleTimeString(undefined, { timeStyle: 'medium' });
    }
    const opts = { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' };
    if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
    return d.toLocaleString(undefined, opts);
  }

  function fmtAgo(iso) {
    if (!iso) return 'never';
    const secs = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (!(secs >= 0)) return fmtTime(iso);
    if (secs < 10) return 'just now';
    if (secs < 60) return `${secs} s ago`;
    if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
    if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
    return fmtTime(iso);
  }

  function fmtBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  }

  function fmtDuration(ms) {
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 3600000) return `${Math.round(ms / 60000)} min`;
    return `${(ms / 3600000).toFixed(1)} h`;
  }

  // Receipt to the agent's ack: how long the event took to be delivered.
  function latency(d) {
    if (!d.ackedAt) return '—';
    const ms = new Date(d.ackedAt) - new Date(d.receivedAt);
    return ms >= 0 ? fmtDuration(ms) : '—';
  }

  function pending(n) {
    if (n === 0) return 'nothing pending';
    return n === 1 ? '1 delivery pending' : `${n} deliveries pending`;
  }

  function providerLabel(p) {
    const found = PROVIDERS.find(([v]) => v === p);
    return found ? found[1].replace(/ \(.*\)$/, '') : p;
  }

  // Text that may break after `.`, `_`, `-` or `/` (an event or id in a narrow box)
  // rather than anywhere; copying it still gives the text unchanged.
  function breakable(text) {
    return text.split(/(?<=[._\-/])/).flatMap((part, i) => (i ? [h('wbr'), part] : [part]));
  }

  function badge(text, kind) {
    return h('span', { class: `badge ${kind || text}` }, text);
  }

  // Scrolls to an element that opened out of sight (a detail below a long table).
  function reveal(el) {
    const box = el.getBoundingClientRect();
    if (box.top > window.innerHeight - 80 || box.bottom < 0) {
      el.scrollIntoView({ block: 'start' });
    }
  }

  // ---- Copying and one-time secrets ---------------------------------------------------

  async function copyText(text, button) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (_) {
      // Not a secure context, or no permission: fall back to selecting and copying.
      const area = h('textarea', { class: 'offscreen', readonly: true });
      area.value = text;
      document.body.appendChild(area);
      area.select();
      try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
      area.remove();
    }
    const label = button.textContent;
    button.textContent = ok ? 'Copied' : 'Select and copy';
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  function copyField(label, value, id, opts) {
    const input = h('input', { id, type: 'text', readonly: true, class: 'mono', spellcheck: 'false', value });
    input.addEventListener('focus', () => input.select());
    return h('div', { class: 'copy-field' },
      h('label', { for: id }, label),
      h('div', { class: 'copy-row' },
        input,
        h('button', {
          type: 'button', class: 'secondary', id: id + '-copy',
          onclick: (ev) => copyText(value, ev.currentTarget),
        }, 'Copy')),
      opts && opts.hint ? h('p', { class: 'hint' }, opts.hint) : null,
      opts && opts.checkReach ? unreachableHint(value, id + '-unreachable') : null);
  }

  // The host of a URL no provider on the internet can reach (this machine, or "any
  // address"), or null.
  function unreachableHost(url) {
    let host;
    try { host = new URL(url).hostname; } catch (_) { return null; }
    const bare = host.replace(/^\[|\]$/g, '');
    const local = bare === 'localhost' || bare.endsWith('.localhost') || /^127\./.test(bare)
      || bare === '::1' || bare === '0.0.0.0' || bare === '::';
    return local ? host : null;
  }

  function unreachableHint(url, id) {
    const host = unreachableHost(url);
    if (!host) return null;
    return h('p', { class: 'hint reach', id },
      'Providers on the internet cannot reach ', h('code', {}, host),
      '. Run hookhub behind an address they can reach and start it with ',
      h('code', {}, '--public-url https://…'), ' (or set ', h('code', {}, 'HOOKHUB_PUBLIC_URL'),
      ') so its webhook URLs use that address.');
  }

  // A panel for something shown once (a token, a signing secret).
  function oncePanel(id, title, fields, warning, extra) {
    return h('section', { id, class: 'card once' },
      h('div', { class: 'once-head' },
        h('h2', {}, title),
        h('button', {
          type: 'button', class: 'secondary small',
          onclick: () => $(id).remove(),
        }, 'I saved it — hide')),
      h('p', { class: 'warning', id: id + '-warning' }, warning),
      fields,
      extra || null);
  }

  // ---- Confirmation -------------------------------------------------------------------

  function confirmDialog({ title, text, confirm, danger }) {
    return new Promise((resolve) => {
      const dialog = h('dialog', { id: 'confirm-dialog', class: 'dialog' },
        h('h2', {}, title),
        h('p', {}, text),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', id: 'confirm-cancel', onclick: () => dialog.close('cancel') }, 'Cancel'),
          h('button', { type: 'button', class: danger ? 'danger' : '', id: 'confirm-ok', onclick: () => dialog.close('ok') }, confirm)));
      dialog.addEventListener('close', () => {
        resolve(dialog.returnValue === 'ok');
        dialog.remove();
      });
      document.body.appendChild(dialog);
      dialog.showModal();
    });
  }

  // A name asked for in a dialog: the trimmed text, or null when cancelled.
  function nameDialog({ title, value, confirm }) {
    return new Promise((resolve) => {
      const input = h('input', { id: 'name-dialog-input', maxlength: 200, required: true, value });
      const form = h('form', { method: 'dialog' },
        h('h2', {}, title),
        h('label', { for: 'name-dialog-input' }, 'Name'),
        input,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', id: 'name-dialog-cancel', onclick: () => dialog.close('cancel') }, 'Cancel'),
          h('button', { type: 'submit', id: 'name-dialog-ok', value: 'ok' }, confirm)));
      const dialog = h('dialog', { id: 'name-dialog', class: 'dialog' }, form);
      dialog.addEventListener('close', () => {
        resolve(dialog.returnValue === 'ok' ? input.value.trim() : null);
        dialog.remove();
      });
      document.body.appendChild(dialog);
      dialog.showModal();
      input.select();
    });
  }

  // ---- Provider setup -----------------------------------------------------------------

  function setupSteps(provider) {
    const step = (...parts) => h('li', {}, ...parts);
    const b = (t) => h('strong', {}, t);
    const c = (t) => h('code', {}, t);
    switch (provider) {
      case 'github':
        return [
          h('ol', {},
            step('In GitHub, open the repository (or organization) and go to ', b('Settings → Webhooks → Add webhook'), '.'),
            step('Paste the URL into ', b('Payload URL'), ' and choose ', c('application/json'), ' as the ', b('Content type'), '.'),
            step('Paste the signing secret into ', b('Secret'), '.'),
            step('Choose the events to send, keep ', b('Active'), ' checked, and click ', b('Add webhook'), '. GitHub sends a ', c('ping'), ' event that shows up in the activity below.')),
          h('p', { class: 'hint' }, 'GitHub signs each request with this secret (X-Hub-Signature-256); hookhub checks it before accepting the event.'),
        ];
      case 'stripe':
        return [
          h('ol', {},
            step('In the Stripe Dashboard, go to ', b('Developers → Webhooks'), ' and click ', b('Add endpoint'), ' (or ', b('Add destination'), ').'),
            step('Paste the URL into ', b('Endpoint URL'), ' and select the events to send.'),
            step('After saving, open the endpoint and reveal its ', b('Signing secret'), ' (', c('whsec_…'), ').'),
            step('Paste that Stripe secret into ', b('Provider secret'), ' on this webhook\u2019s page. Until then, deliveries are accepted but marked unverified.')),
          h('p', { class: 'hint' }, 'Stripe signs with a secret it issues. The hookhub signing secret is what your agent uses to verify what hookhub hands it.'),
        ];
      case 'slack':
        return [
          h('ol', {},
            step('At ', c('api.slack.com/apps'), ', open your app. Under ', b('Basic Information → App Credentials'), ', reveal and copy the ', b('Signing Secret'), '.'),
            step('Paste it into ', b('Provider secret'), ' on this webhook\u2019s page (do this first: until then, deliveries are accepted but marked unverified).'),
            step('Go to ', b('Event Subscriptions'), ', turn ', b('Enable Events'), ' on, and paste the URL into ', b('Request URL'), '. Slack checks it at once; hookhub answers the challenge.'),
            step('Subscribe to the bot or workspace events you want and save.')),
          h('p', { class: 'hint' }, 'Slack signs with its own signing secret. The hookhub signing secret is what your agent uses to verify what hookhub hands it.'),
        ];
      default:
        return [
          h('ol', {},
            step('Give the sender the URL and the signing secret.'),
            step('The sender signs each request the Standard Webhooks way: headers ', c('webhook-id'), ', ', c('webhook-timestamp'), ' and ', c('webhook-signature: v1,<base64 HMAC-SHA256>'), ' over ', c('id.timestamp.body'), ', keyed with the base64 after ', c('whsec_'), '.'),
            step('Any Standard Webhooks library does this for you.')),
        ];
    }
  }

  function setupDetails(provider, open) {
    return h('details', { class: 'setup', open, id: 'setup-steps' },
      h('summary', {}, `How to connect ${providerLabel(provider)}`),
      setupSteps(provider));
  }

  // ---- Session ------------------------------------------------------------------------

  async function loadSession() {
    try {
      state.session = await api('GET', '/dashboard/session');
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
      state.session = null;
    }
    renderAccount();
  }

  function renderAccount() {
    $('account').hidden = !state.session;
    $('account-name').textContent = state.session ? state.session.name : '';
  }

  function sessionEnded() {
    if (!state.session) return;
    state.session = null;
    renderAccount();
    stopView();
    renderSignIn('Your session has ended. Sign in again to continue.');
  }

  async function signOut() {
    try {
      await api('DELETE', '/dashboard/session');
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) {
        showError(describe(err));
        return;
      }
    }
    state.session = null;
    renderAccount();
    stopView();
    renderSignIn('You are signed out.');
  }

  // The owner's own token: a new one, shown once above whatever page is open. This
  // session stays signed in; every other session of the account ends.
  async function rotateOwnerToken() {
    const ok = await confirmDialog({
      title: 'Rotate your owner token?',
      text: 'A new owner token is made and shown once. The current one stops working at once, and every other dashboard session of this account is signed out.',
      confirm: 'Rotate owner token',
      danger: true,
    });
    if (!ok) return;
    clearMessages();
    try {
      const r = await api('POST', '/v1/account/token/rotate');
      const old = $('owner-token-panel');
      if (old) old.remove();
      $('view').before(oncePanel('owner-token-panel', 'New owner token',
        [copyField('Owner token', r.token, 'rotated-owner-token')],
        'This token is shown only now. The old one no longer works: sign in and call the API with this one.'));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
    }
  }

  function renderSignIn(message) {
    setCrumbs([]);
    const error = h('p', { class: 'field-error', id: 'sign-in-error', role: 'alert' });
    const token = h('input', {
      id: 'token', name: 'token', type: 'password', autocomplete: 'off',
      placeholder: 'hh_owner_…', required: true, class: 'mono',
    });
    const form = h('form', { id: 'sign-in-form', class: 'stack' },
      h('label', { for: 'token' }, 'Owner token'),
      token,
      h('button', { type: 'submit', id: 'sign-in-submit' }, 'Sign in'),
      error);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      try {
        state.session = await api('POST', '/dashboard/session', { token: token.value.trim() });
      } catch (err) {
        error.textContent = err instanceof ApiError && err.status === 401
          ? 'That is not a valid owner token.' : describe(err);
        return;
      }
      token.value = '';
      renderAccount();
      route();
    });
    replace($('view'),
      h('section', { class: 'card narrow', id: 'sign-in' },
        h('h1', {}, 'Sign in to hookhub'),
        message ? h('p', { class: 'notice-inline' }, message) : null,
        h('p', { class: 'muted' },
          'Paste your owner token. hookhub printed one when it first started; ',
          h('code', {}, 'hookhub account create'), ' makes more.'),
        form));
    token.focus();
  }

  // ---- Routing ------------------------------------------------------------------------

  function stopView() {
    for (const undo of state.cleanups.splice(0)) {
      try { undo(); } catch (_) { /* already stopped */ }
    }
  }

  function setCrumbs(items) {
    const nav = $('crumbs');
    clear(nav);
    items.forEach(([label, href], i) => {
      if (i > 0) nav.appendChild(h('span', { class: 'sep', 'aria-hidden': 'true' }, '›'));
      nav.appendChild(href ? h('a', { href }, label) : h('span', { class: 'current' }, label));
    });
  }

  async function route() {
    stopView();
    clearMessages();
    if (!state.session) {
      renderSignIn();
      return;
    }
    // `#/path?query`: the query keeps a view's settings (the status filter) across reloads.
    const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    const params = new URLSearchParams(query || '');
    const view = $('view');
    replace(view, h('p', { class: 'muted' }, 'Loading…'));
    try {
      if (parts.length === 0) {
        await agentsView(view);
      } else if (parts[0] === 'agents' && parts.length === 2) {
        await agentView(view, parts[1]);
      } else if (parts[0] === 'agents' && parts[2] === 'webhooks' && parts.length === 4) {
        await webhookView(view, parts[1], parts[3], params);
      } else {
        notFound(view, 'There is no such page.');
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      if (err instanceof ApiError && err.status === 404) {
        notFound(view, 'It does not exist, or it is not yours.');
        return;
      }
      replace(view);
      showError(describe(err));
    }
  }

  function notFound(view, text) {
    setCrumbs([['Agents', '#/'], ['Not found']]);
    replace(view, h('section', { class: 'card empty', id: 'not-found' },
      h('h1', {}, 'Not found'),
      h('p', {}, text),
      h('p', {}, h('a', { href: '#/' }, '← Back to your agents'))));
  }

  // ---- Agents -------------------------------------------------------------------------

  async function agentsView(view) {
    setCrumbs([['Agents']]);
    const tableSlot = h('div', { id: 'agents-slot' });
    const tokenSlot = h('div', { id: 'agent-token-slot' });
    const nameInput = h('input', { id: 'agent-name', name: 'name', maxlength: 200, required: true, placeholder: 'e.g. triage-bot' });
    const form = h('form', { id: 'create-agent-form', class: 'inline-form' },
      h('label', { for: 'agent-name' }, 'New agent'),
      nameInput,
      h('button', { type: 'submit', id: 'create-agent' }, 'Create agent'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearMessages();
      try {
        const created = await api('POST', '/v1/agents', { name: nameInput.value });
        nameInput.value = '';
        replace(tokenSlot, oncePanel('agent-token-panel', `Agent “${created.name}” created`,
          [copyField('Agent token', created.token, 'agent-token')],
          'This token is shown only now and cannot be shown again. Copy it and give it to the agent; it connects with it to /v1/agent/connect (Authorization: Bearer …).'));
        await refresh();
      } catch (err) {
        showFormError(err, form);
      }
    });

    async function refresh() {
      const { agents } = await api('GET', '/v1/agents');
      replace(tableSlot, agentsTable(agents));
    }

    replace(view,
      h('div', { class: 'page-head' },
        h('div', {}, h('h1', {}, 'Agents'),
          h('p', { class: 'muted' }, 'Each agent receives its webhooks’ events over its own WebSocket.'))),
      h('section', { class: 'card' }, form),
      tokenSlot,
      h('section', { class: 'card flush' }, tableSlot));
    await refresh();
    nameInput.focus();
    // Online state and backlog change on their own; keep them current.
    const timer = setInterval(() => {
      refresh().catch((err) => {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      });
    }, AGENTS_REFRESH_MS);
    state.cleanups.push(() => clearInterval(timer));
  }

  function agentsTable(agents) {
    if (agents.length === 0) {
      return h('div', { class: 'empty', id: 'agents-empty' },
        h('h2', {}, 'No agents yet'),
        h('p', {}, 'Create one above. You will see its token once; the agent uses it to connect and receive its webhooks.'));
    }
    return h('div', { class: 'table-scroll' }, h('table', { id: 'agents-table', class: 'table' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Name'), h('th', {}, 'Status'), h('th', {}, 'Last seen'),
        h('th', { class: 'num', title: BACKLOG_MEANS }, 'Backlog'), h('th', {}, 'Created'))),
      h('tbody', {}, agents.map((a) => h('tr', { dataset: { agentId: a.agentId }, class: a.active ? '' : 'inactive' },
        h('td', {},
          h('a', { href: `#/agents/${enc(a.agentId)}`, class: 'agent-link strong truncate cell-name', title: a.name }, a.name),
          h('div', { class: 'mono muted small' }, a.agentId)),
        h('td', {}, agentBadge(a)),
        h('td', { title: fmtTime(a.lastSeenAt), class: 'nowrap' }, a.connected ? 'now' : fmtAgo(a.lastSeenAt)),
        h('td', { class: 'num backlog' }, String(a.backlogDepth)),
        h('td', { class: 'nowrap' }, fmtTime(a.createdAt)))))));
  }

  function agentBadge(a) {
    if (!a.active) return badge('deleted', 'inactive');
    return a.connected ? badge('online') : badge('offline');
  }

  async function findAgent(agentId) {
    const { agents } = await api('GET', '/v1/agents');
    const agent = agents.find((a) => a.agentId === agentId);
    if (!agent) throw new ApiError(404, 'not_found', 'not found');
    return agent;
  }

  // ---- An agent's webhooks ------------------------------------------------------------

  async function agentView(view, agentId) {
    const [agent, { webhooks }] = await Promise.all([
      findAgent(agentId),
      api('GET', `${agentPath(agentId)}/webhooks`),
    ]);
    setCrumbs([['Agents', '#/'], [agent.name]]);
    const tableSlot = h('div', { id: 'webhooks-slot' });
    const createdSlot = h('div', { id: 'created-slot' });
    const nameInput = h('input', { id: 'webhook-name', name: 'name', maxlength: 200, required: true, placeholder: 'e.g. GitHub pushes' });
    const providerSelect = h('select', { id: 'webhook-provider', name: 'provider' },
      PROVIDERS.map(([value, label]) => h('option', { value }, label)));
    const form = h('form', { id: 'create-webhook-form', class: 'inline-form' },
      h('label', { for: 'webhook-name' }, 'New webhook'),
      nameInput,
      h('label', { for: 'webhook-provider', class: 'visually-hidden' }, 'Provider'),
      providerSelect,
      h('button', { type: 'submit', id: 'create-webhook' }, 'Create webhook'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearMessages();
      try {
        const created = await api('POST', `${agentPath(agentId)}/webhooks`,
          { name: nameInput.value, provider: providerSelect.value });
        nameInput.value = '';
        replace(createdSlot, oncePanel('secret-panel', `Webhook “${created.name}” created`,
          [
            copyField('URL', created.url, 'webhook-url', { checkReach: true }),
            copyField('Signing secret', created.signingSecret, 'signing-secret'),
          ],
          'Copy the signing secret now: it will not be shown again. If you lose it, rotate it to get a new one.',
          [
            setupDetails(created.provider, true),
            h('p', {}, h('a', { href: `#/agents/${enc(agentId)}/webhooks/${enc(created.webhookId)}`, id: 'open-created' }, 'Open its activity →')),
          ]));
        const list = await api('GET', `${agentPath(agentId)}/webhooks`);
        replace(tableSlot, webhooksTable(agentId, list.webhooks));
      } catch (err) {
        showFormError(err, form);
      }
    });

    const tokenSlot = h('div', { id: 'agent-rotated-slot' });
    const headSlot = h('div', { id: 'agent-head' });

    async function rename() {
      const name = await nameDialog({ title: 'Rename the agent', value: agent.name, confirm: 'Rename' });
      if (name === null) return;
      clearMessages();
      try {
        Object.assign(agent, await api('PATCH', agentPath(agentId), { name }));
        setCrumbs([['Agents', '#/'], [agent.name]]);
        renderHead();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    async function rotateToken() {
      const ok = await confirmDialog({
        title: `Rotate the token of “${agent.name}”?`,
        text: 'A new token is made and shown once. The current one stops working at once: the agent is disconnected and must connect again with the new token.',
        confirm: 'Rotate token',
        danger: true,
      });
      if (!ok) return;
      clearMessages();
      try {
        const r = await api('POST', `${agentPath(agentId)}/token/rotate`);
        replace(tokenSlot, oncePanel('agent-rotated-panel', 'New agent token',
          [copyField('Agent token', r.token, 'rotated-agent-token')],
          'This token is shown only now. The old one no longer works: give this one to the agent.'));
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    async function remove() {
      const ok = await confirmDialog({
        title: `Delete “${agent.name}”?`,
        text: 'Its token stops working and it is disconnected; its webhooks stop accepting deliveries (senders get 404). Its history stays readable here. This cannot be undone.',
        confirm: 'Delete agent',
        danger: true,
      });
      if (!ok) return;
      clearMessages();
      try {
        await api('DELETE', agentPath(agentId));
        showNotice(`Agent “${agent.name}” deleted. Its webhooks no longer accept deliveries.`);
        agent.active = false;
        agent.connected = false;
        clear(tokenSlot);
        formCard.remove();
        renderHead();
        const list = await api('GET', `${agentPath(agentId)}/webhooks`);
        replace(tableSlot, webhooksTable(agentId, list.webhooks));
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    function renderHead() {
      replace(headSlot, h('div', { class: 'page-head' },
        h('div', {},
          h('h1', { id: 'agent-title', class: 'title-clamp', title: agent.name }, agent.name),
          h('p', { class: 'muted' },
            agentBadge(agent), ' ',
            !agent.active ? 'Deleted: its token and webhooks no longer work; its history stays readable.'
              : agent.connected ? 'Connected now' : `Last seen ${fmtAgo(agent.lastSeenAt)}`,
            ' · ',
            h('span', { id: 'agent-backlog', title: BACKLOG_MEANS }, pending(agent.backlogDepth)),
            ' · ',
            h('span', { class: 'mono' }, agent.agentId))),
        h('div', { class: 'actions' },
          h('button', { type: 'button', id: 'rename-agent', class: 'secondary', onclick: rename }, 'Rename'),
          agent.active ? h('button', { type: 'button', id: 'rotate-agent-token', class: 'secondary', onclick: rotateToken }, 'Rotate token') : null,
          agent.active ? h('button', { type: 'button', id: 'delete-agent', class: 'danger', onclick: remove }, 'Delete agent') : null)));
    }
    renderHead();

    const formCard = h('section', { class: 'card' }, form);
    replace(view,
      headSlot,
      tokenSlot,
      agent.active ? formCard : null,
      createdSlot,
      h('section', { class: 'card flush' }, tableSlot));
    replace(tableSlot, webhooksTable(agentId, webhooks));
    if (agent.active) nameInput.focus();
  }

  function webhooksTable(agentId, webhooks) {
    if (webhooks.length === 0) {
      return h('div', { class: 'empty', id: 'webhooks-empty' },
        h('h2', {}, 'No webhooks yet'),
        h('p', {}, 'Create one above to get a URL to give GitHub, Stripe, Slack or any sender. Its events go to this agent.'));
    }
    return h('div', { class: 'table-scroll' }, h('table', { id: 'webhooks-table', class: 'table' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Name'), h('th', {}, 'Provider'), h('th', {}, 'URL'),
        h('th', {}, 'State'), h('th', {}, 'Created'))),
      h('tbody', {}, webhooks.map((w) => h('tr', { dataset: { webhookId: w.webhookId }, class: w.active ? '' : 'inactive' },
        h('td', {}, h('a', {
          href: `#/agents/${enc(agentId)}/webhooks/${enc(w.webhookId)}`,
          class: 'webhook-link strong truncate cell-name', title: w.name,
        }, w.name)),
        h('td', { class: 'nowrap' }, providerLabel(w.provider)),
        h('td', {}, h('div', { class: 'cell-url' },
          // Cut from the start of the URL, which every webhook shares, not its id.
          h('code', { title: w.url },
            h('span', { class: 'truncate' }, w.url.slice(0, w.url.lastIndexOf('/') + 1)),
            h('span', { class: 'url-id' }, w.url.slice(w.url.lastIndexOf('/') + 1))),
          h('button', { type: 'button', class: 'secondary small', onclick: (ev) => copyText(w.url, ev.currentTarget) }, 'Copy'))),
        h('td', {}, w.active ? badge('active') : badge('inactive')),
        h('td', { class: 'nowrap' }, fmtTime(w.createdAt), h('div', { class: 'muted small' }, `by ${w.createdBy}`)))))));
  }

  // ---- A webhook and its activity -----------------------------------------------------

  async function webhookView(view, agentId, webhookId, params) {
    const [agent, webhook] = await Promise.all([
      findAgent(agentId),
      api('GET', webhookPath(agentId, webhookId)),
    ]);
    setCrumbs([['Agents', '#/'], [agent.name, `#/agents/${enc(agentId)}`], [webhook.name]]);
    const base = webhookPath(agentId, webhookId);
    const secretSlot = h('div', { id: 'rotate-slot' });
    const detailSlot = h('div', { id: 'detail-slot', class: 'detail-slot' });
    const tableSlot = h('div', { id: 'deliveries-slot' });
    const liveDot = h('span', { id: 'live', class: 'live off' }, 'Connecting…');
    const filter = h('select', { id: 'status-filter' },
      h('option', { value: '' }, 'All statuses'),
      STATUSES.map((s) => h('option', { value: s }, s)));
    if (STATUSES.includes(params.get('status'))) filter.value = params.get('status');
    const olderButton = h('button', { type: 'button', id: 'load-older', class: 'secondary', hidden: true }, 'Load older');
    // Search: by event type, by id (the hub's or the provider's), by receipt time.
    const searchEvent = h('input', { id: 'search-event', type: 'search', placeholder: 'Event type', value: params.get('event') || '' });
    const searchId = h('input', { id: 'search-id', type: 'search', class: 'mono', placeholder: 'Delivery or provider id', value: params.get('q') || '' });
    const searchSince = h('input', { id: 'search-since', type: 'datetime-local', step: 1, title: 'Received at or after (your local time)' });
    const searchUntil = h('input', { id: 'search-until', type: 'datetime-local', step: 1, title: 'Received before (your local time)' });
    const searchForm = h('form', { id: 'search-form', class: 'search-form', role: 'search' },
      searchEvent, searchId,
      h('label', { for: 'search-since', class: 'muted small' }, 'from'), searchSince,
      h('label', { for: 'search-until', class: 'muted small' }, 'to'), searchUntil,
      h('button', { type: 'submit', id: 'search', class: 'secondary' }, 'Search'),
      h('button', { type: 'button', id: 'search-clear', class: 'secondary' }, 'Clear'));
    const redeliverMatching = h('button', { type: 'button', id: 'redeliver-matching', class: 'secondary' }, 'Redeliver matching…');
    const matchingSlot = h('div', { id: 'matching-slot' });
    const sendTest = h('button', { type: 'button', id: 'send-test-event', class: 'secondary', hidden: !webhook.active }, 'Send test event…');
    const testEventSlot = h('div', { id: 'test-event-slot' });

    // The live first page, and older pages the person asked for.
    let live = [];
    let older = [];
    let cursor = null;
    let selected = null;
    // The state of the delivery the detail shows, to refresh it when the live page moves on.
    let shown = null;
    // What the detail last said (a redelivery queued), kept across its live refreshes.
    let note = '';
    let stream = null;

    function renderRows() {
      const seen = new Set(live.map((d) => d.deliveryId));
      const rows = live.concat(older.filter((d) => !seen.has(d.deliveryId)));
      replace(tableSlot, deliveriesTable(rows, filter.value, selected, openDetail));
      olderButton.hidden = !cursor;
    }

    // The list's filters as query parameters: the status and the search.
    function query() {
      const qs = new URLSearchParams();
      if (filter.value) qs.set('status', filter.value);
      if (searchEvent.value.trim()) qs.set('event', searchEvent.value.trim());
      if (searchId.value.trim()) qs.set('q', searchId.value.trim());
      const since = localToIso(searchSince.value);
      const until = localToIso(searchUntil.value);
      if (since) qs.set('since', since);
      if (until) qs.set('until', until);
      return qs;
    }

    function startStream() {
      if (stream) stream.close();
      const qs = query().toString();
      stream = new EventSource(`${base}/deliveries/stream${qs ? `?${qs}` : ''}`);
      stream.addEventListener('deliveries', (ev) => {
        const page = JSON.parse(ev.data);
        live = page.deliveries;
        if (older.length === 0) cursor = page.nextCursor;
        liveDot.className = 'live on';
        liveDot.textContent = 'Live';
        renderRows();
        const current = live.find((d) => d.deliveryId === selected);
        if (current && shown && (current.status !== shown.status || current.attempts !== shown.attempts)) {
          openDetail(selected, { quiet: true });
        }
      });
      stream.addEventListener('failed', (ev) => {
        stream.close();
        liveDot.className = 'live off';
        liveDot.textContent = 'Stopped';
        let message = 'Live updates stopped.';
        try { message = `Live updates stopped: ${JSON.parse(ev.data).error.message}`; } catch (_) { /* keep the plain message */ }
        showError(message);
      });
      stream.addEventListener('error', () => {
        liveDot.className = 'live off';
        if (stream.readyState === EventSource.CLOSED) {
          liveDot.textContent = 'Stopped';
          // Refused outright: most likely the session ended.
          api('GET', '/dashboard/session').then(
            () => showError('Live updates stopped. Reload the page to resume them.'),
            (err) => { if (err instanceof ApiError && err.status === 401) sessionEnded(); });
        } else {
          liveDot.textContent = 'Reconnecting…';
        }
      });
    }
    state.cleanups.push(() => { if (stream) stream.close(); });

    function refilter() {
      // Into the address (without a new history entry or a hashchange), so a reload keeps
      // the status and the text of the search.
      const hash = `#/agents/${enc(agentId)}/webhooks/${enc(webhookId)}`;
      const kept = new URLSearchParams();
      for (const key of ['status', 'event', 'q']) {
        const value = query().get(key);
        if (value) kept.set(key, value);
      }
      history.replaceState(null, '', kept.toString() ? `${hash}?${kept}` : hash);
      older = [];
      cursor = null;
      startStream();
    }
    filter.addEventListener('change', refilter);
    searchForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      refilter();
    });
    searchForm.querySelector('#search-clear').addEventListener('click', () => {
      for (const input of [searchEvent, searchId, searchSince, searchUntil]) input.value = '';
      refilter();
    });
    redeliverMatching.addEventListener('click', () => {
      replace(matchingSlot, redeliverMatchingPanel(base, {
        event: searchEvent.value.trim(),
        since: searchSince.value,
        until: searchUntil.value,
      }, () => clear(matchingSlot)));
      reveal(matchingSlot);
    });

    sendTest.addEventListener('click', () => {
      // Deactivated since the page was drawn: its URL takes nothing, test events included.
      if (!webhook.active) {
        sendTest.hidden = true;
        clear(testEventSlot);
        return;
      }
      replace(testEventSlot, testEventPanel(base, webhook, (deliveryId) => openDetail(deliveryId), () => clear(testEventSlot)));
      reveal(testEventSlot);
    });

    olderButton.addEventListener('click', async () => {
      const rows = older.length ? older : live;
      const last = rows[rows.length - 1];
      if (!last) return;
      const qs = query();
      qs.set('before', last.deliveryId);
      try {
        const page = await api('GET', `${base}/deliveries?${qs}`);
        older = older.concat(page.deliveries);
        cursor = page.nextCursor;
        renderRows();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    });

    async function openDetail(deliveryId, opts) {
      selected = deliveryId;
      if (!(opts && opts.quiet)) {
        shown = null;
        note = '';
        renderRows();
        replace(detailSlot, h('section', { class: 'card' }, h('p', { class: 'muted' }, 'Loading delivery…')));
      }
      try {
        const d = await api('GET', `${base}/deliveries/${enc(deliveryId)}`);
        if (selected !== deliveryId) return;
        shown = { status: d.status, attempts: d.attempts };
        replace(detailSlot, deliveryDetail(d, base, note, (text) => { note = text; }, () => {
          selected = null;
          shown = null;
          clear(detailSlot);
          renderRows();
        }));
        if (!(opts && opts.quiet)) reveal(detailSlot);
      } catch (err) {
        clear(detailSlot);
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    async function rotate() {
      const ok = await confirmDialog({
        title: 'Rotate the signing secret?',
        text: 'A new secret is made and shown once. The current one keeps verifying requests for the overlap window (24 hours unless configured otherwise), so update the sender soon.',
        confirm: 'Rotate secret',
      });
      if (!ok) return;
      clearMessages();
      try {
        const r = await api('POST', `${base}/rotate`);
        replace(secretSlot, oncePanel('rotated-panel', 'New signing secret',
          [copyField('Signing secret', r.signingSecret, 'rotated-secret')],
          'Copy the new signing secret now: it will not be shown again. Paste it where the sender keeps the old one.'));
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    async function rename() {
      const name = await nameDialog({ title: 'Rename the webhook', value: webhook.name, confirm: 'Rename' });
      if (name === null) return;
      clearMessages();
      try {
        Object.assign(webhook, await api('PATCH', base, { name }));
        setCrumbs([['Agents', '#/'], [agent.name, `#/agents/${enc(agentId)}`], [webhook.name]]);
        renderHead();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    async function deactivate() {
      const ok = await confirmDialog({
        title: `Deactivate “${webhook.name}”?`,
        text: 'Its URL stops accepting deliveries at once: senders get 404. Its history stays readable here. This cannot be undone; make a new webhook to receive again.',
        confirm: 'Deactivate',
        danger: true,
      });
      if (!ok) return;
      clearMessages();
      try {
        await api('DELETE', base);
        showNotice('Webhook deactivated. Its URL no longer accepts deliveries.');
        webhook.active = false;
        // A secret of a webhook that receives nothing is no use to anyone.
        clear(secretSlot);
        renderHead();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    }

    function providerSecretForm() {
      const input = h('input', { id: 'provider-secret', name: 'secret', type: 'password', autocomplete: 'off', class: 'mono', required: true, placeholder: webhook.provider === 'stripe' ? 'whsec_… from Stripe' : 'Slack signing secret' });
      const form = h('form', { id: 'provider-secret-form', class: 'inline-form' },
        h('label', { for: 'provider-secret' }, 'Provider secret'),
        input,
        h('button', { type: 'submit', id: 'save-provider-secret' }, 'Save'));
      const secretState = h('p', { id: 'provider-secret-state', role: 'status' });
      function renderSecretState() {
        secretState.hidden = typeof webhook.providerSecretSet !== 'boolean';
        secretState.className = webhook.providerSecretSet ? 'secret-state set' : 'secret-state unset';
        secretState.textContent = webhook.providerSecretSet
          ? 'Set — inbound requests are verified.'
          : 'Not set — deliveries are accepted unverified until you set it.';
      }
      renderSecretState();
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearMessages();
        try {
          await api('PUT', `${base}/provider-secret`, { secret: input.value });
          input.value = '';
          webhook.providerSecretSet = true;
          renderSecretState();
          showNotice(`${providerLabel(webhook.provider)} secret saved. Deliveries are verified with it from now on.`);
        } catch (err) {
          showFormError(err, form);
        }
      });
      return h('div', {},
        form,
        secretState,
        h('p', { class: 'hint' }, `The secret ${providerLabel(webhook.provider)} issued for this endpoint. It is stored encrypted and never shown again.`));
    }

    const headSlot = h('div', { id: 'webhook-head' });
    function renderHead() {
      replace(headSlot,
        h('div', { class: 'page-head' },
          h('div', {},
            h('h1', { id: 'webhook-title', class: 'title-clamp', title: webhook.name }, webhook.name),
            h('p', { class: 'muted' },
              webhook.active ? badge('active') : badge('inactive'), ' ',
              `${providerLabel(webhook.provider)} · created ${fmtTime(webhook.createdAt)} by ${webhook.createdBy} · `,
              h('span', { class: 'mono' }, webhook.webhookId))),
          h('div', { class: 'actions' },
            h('button', { type: 'button', id: 'rename-webhook', class: 'secondary', onclick: rename }, 'Rename'),
            webhook.active ? h('button', { type: 'button', id: 'rotate', class: 'secondary', onclick: rotate }, 'Rotate secret') : null,
            webhook.active ? h('button', { type: 'button', id: 'deactivate', class: 'danger', onclick: deactivate }, 'Deactivate') : null)),
        h('section', { class: 'card' },
          copyField('URL', webhook.url, 'url', {
            hint: webhook.active ? null : 'Deactivated: this URL answers 404.',
            checkReach: webhook.active,
          }),
          webhook.active && (webhook.provider === 'stripe' || webhook.provider === 'slack')
            ? providerSecretForm() : null,
          webhook.active ? setupDetails(webhook.provider, false) : null));
    }
    renderHead();

    replace(view,
      headSlot,
      secretSlot,
      h('section', { class: 'activity' },
        h('div', { class: 'activity-head' },
          h('h2', {}, 'Activity'),
          liveDot,
          h('div', { class: 'grow' }),
          h('label', { for: 'status-filter', class: 'muted' }, 'Show'),
          filter,
          redeliverMatching,
          sendTest),
        searchForm,
        matchingSlot,
        testEventSlot,
        h('div', { class: 'activity-body' },
          h('div', { class: 'card flush' }, tableSlot, h('div', { class: 'more' }, olderButton)),
          detailSlot)));
    renderRows();
    startStream();
  }

  function deliveriesTable(rows, status, selected, onOpen) {
    if (rows.length === 0) {
      return h('div', { class: 'empty', id: 'deliveries-empty' },
        h('h2', {}, status ? `No ${status} deliveries` : 'No deliveries yet'),
        h('p', {}, status
          ? 'Nothing with this status and search. Choose “All statuses”, or clear the search, to see everything.'
          : 'Send a request to the URL above. Each one appears here the moment it arrives.'));
    }
    return h('div', { class: 'table-scroll' }, h('table', { id: 'deliveries-table', class: 'table clickable activity-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Status'), h('th', {}, 'Event'), h('th', {}, 'Received'),
        h('th', { class: 'num' }, 'Size'), h('th', { class: 'num' }, 'Attempts'),
        h('th', { class: 'num', title: 'From receipt to the agent\u2019s ack' }, 'Delivered in'))),
      h('tbody', {}, rows.map((d) => {
        const row = h('tr', {
          dataset: { deliveryId: d.deliveryId, status: d.status },
          class: d.deliveryId === selected ? 'selected' : '',
          tabindex: 0,
          onclick: () => onOpen(d.deliveryId),
          onkeydown: (ev) => { if (ev.key === 'Enter') onOpen(d.deliveryId); },
        },
        h('td', {}, badge(d.status),
          d.status === 'failed' && d.reason ? h('span', { class: 'muted small failed-reason truncate', title: d.reason }, d.reason) : null,
          d.verified ? null : h('span', { class: 'muted small unverified', title: 'No provider secret was set to verify it' }, 'unverified')),
        h('td', { class: 'event' }, d.event
          ? h('span', { class: 'event-name truncate', title: d.event }, d.event)
          : h('span', { class: 'muted' }, '—')),
        h('td', { title: fmtTime(d.receivedAt) }, fmtRecent(d.receivedAt)),
        h('td', { class: 'num' }, fmtBytes(d.sizeBytes)),
        h('td', { class: 'num' }, String(d.attempts)),
        h('td', { class: 'num' }, latency(d)));
        return row;
      }))));
  }

  // A datetime-local input's value (local time, no zone) as an RFC 3339 time, or ''.
  function localToIso(value) {
    if (!value) return '';
    const t = new Date(value);
    return Number.isNaN(t.getTime()) ? '' : t.toISOString();
  }

  // "Redeliver matching…": the filter, a dry run's count, then the redeliver itself, which
  // is offered only once the count is known and says how many it will queue.
  function redeliverMatchingPanel(base, preset, onClose) {
    const boxes = REDELIVERABLE.map((s, i) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'status', value: s, id: `match-${s}`, checked: i === 0 }), ` ${s}`));
    const event = h('input', { id: 'match-event', type: 'text', placeholder: 'Any event type', value: preset.event });
    const since = h('input', { id: 'match-since', type: 'datetime-local', step: 1, value: preset.since });
    const until = h('input', { id: 'match-until', type: 'datetime-local', step: 1, value: preset.until });
    const count = h('p', { id: 'match-count', role: 'status', class: 'muted' }, 'Count them first.');
    const countButton = h('button', { type: 'submit', id: 'match-dry-run', class: 'secondary' }, 'Count');
    const go = h('button', { type: 'button', id: 'match-confirm', disabled: true }, 'Redeliver');
    let counted = null;
    function filterBody() {
      const body = { status: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value) };
      if (event.value.trim()) body.event = event.value.trim();
      if (localToIso(since.value)) body.since = localToIso(since.value);
      if (localToIso(until.value)) body.until = localToIso(until.value);
      return body;
    }
    function stale() {
      counted = null;
      go.disabled = true;
      go.textContent = 'Redeliver';
      count.textContent = 'Count them first.';
    }
    const form = h('form', { id: 'match-form', class: 'match-form' },
      h('div', { class: 'checks' }, h('span', { class: 'muted' }, 'Status'), boxes),
      h('label', { for: 'match-event' }, 'Event'), event,
      h('label', { for: 'match-since' }, 'Received from'), since,
      h('label', { for: 'match-until' }, 'to'), until,
      h('div', { class: 'actions' }, countButton, go));
    form.addEventListener('input', stale);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearMessages();
      try {
        const body = filterBody();
        const r = await api('POST', `${base}/deliveries/redeliver`, Object.assign({ dryRun: true }, body));
        counted = body;
        count.textContent = r.matched === 1 ? '1 delivery matches.' : `${r.matched} deliveries match.`;
        go.disabled = r.matched === 0;
        go.textContent = `Redeliver ${r.matched}`;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showFormError(err, form);
      }
    });
    go.addEventListener('click', async () => {
      if (!counted) return;
      go.disabled = true;
      try {
        const r = await api('POST', `${base}/deliveries/redeliver`, counted);
        count.textContent = `Queued ${r.requeued} again, in the order they were received.`;
        go.textContent = 'Redeliver';
        counted = null;
      } catch (err) {
        go.disabled = false;
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    });
    return h('section', { class: 'card', id: 'redeliver-matching-panel' },
      h('div', { class: 'once-head' },
        h('h2', {}, 'Redeliver matching deliveries'),
        h('button', { type: 'button', class: 'secondary small', id: 'match-close', onclick: onClose }, 'Close')),
      h('p', { class: 'hint' }, 'They are queued for the agent again at the end of its queue, in the order they were received. All of them, or none if that would pass the agent\u2019s backlog cap.'),
      form, count);
  }

  // Event types offered for a test event, the provider's default first. Any other name
  // may be typed in; the hub shapes these ones as the provider does.
  const TEST_EVENTS = {
    github: ['push', 'ping', 'issues', 'issue_comment', 'pull_request'],
    stripe: ['payment_intent.succeeded', 'payment_intent.payment_failed', 'charge.succeeded', 'charge.failed', 'checkout.session.completed', 'customer.created', 'invoice.paid'],
    slack: ['app_mention', 'message', 'reaction_added', 'url_verification'],
    generic: ['test.event'],
  };

  // "Send test event…": a sample from the webhook's provider, signed by the hub with the
  // webhook's secret and taken through ingest like a real request, so it shows up in the
  // activity below and goes to the agent.
  function testEventPanel(base, webhook, onOpen, onClose) {
    const events = TEST_EVENTS[webhook.provider] || TEST_EVENTS.generic;
    const input = h('input', { id: 'test-event-type', name: 'event', type: 'text', class: 'mono', list: 'test-event-types', autocomplete: 'off', required: true, value: events[0] });
    const result = h('p', { id: 'test-event-result', role: 'status', class: 'muted' });
    const send = h('button', { type: 'submit', id: 'test-event-send' }, 'Send');
    const form = h('form', { id: 'test-event-form', class: 'inline-form test-event-form' },
      h('label', { for: 'test-event-type' }, 'Event type'),
      input,
      h('datalist', { id: 'test-event-types' }, events.map((e) => h('option', { value: e }))),
      send);
    const unsigned = (webhook.provider === 'stripe' || webhook.provider === 'slack') && !webhook.providerSecretSet;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearMessages();
      const event = input.value.trim();
      send.disabled = true;
      try {
        const r = await api('POST', `${base}/test-event`, event ? { event } : {});
        if (r && r.deliveryId) {
          replace(result, event ? `Sent \u201c${event}\u201d: delivery ` : 'Sent the default event: delivery ',
            h('span', { class: 'mono', id: 'test-event-delivery' }, r.deliveryId), ' is in the activity. ',
            h('button', { type: 'button', class: 'secondary small', id: 'test-event-open', onclick: () => onOpen(r.deliveryId) }, 'Show it'));
        } else if (r && typeof r.challenge === 'string') {
          result.textContent = 'Slack\u2019s URL check was answered with its challenge, as the hub answers Slack; nothing is queued for the agent.';
        } else {
          result.textContent = 'Sent.';
        }
      } catch (err) {
        result.textContent = '';
        if (err instanceof ApiError && err.status === 404) {
          showError('This webhook no longer accepts events.');
        } else if (!(err instanceof ApiError && err.status === 401)) {
          showFormError(err, form);
        }
      } finally {
        send.disabled = false;
      }
    });
    return h('section', { class: 'card', id: 'test-event-panel' },
      h('div', { class: 'once-head' },
        h('h2', {}, 'Send a test event'),
        h('button', { type: 'button', class: 'secondary small', id: 'test-event-close', onclick: onClose }, 'Close')),
      h('p', { class: 'hint' }, `A sample ${providerLabel(webhook.provider)} event, signed the way ${providerLabel(webhook.provider)} signs it, goes through the same checks as a real one and is queued for the agent.`),
      unsigned
        ? h('p', { class: 'hint', id: 'test-event-unsigned' }, 'No provider secret is set, so it is sent unsigned and accepted as unverified, as the provider\u2019s own requests are until then.')
        : null,
      form, result);
  }

  function historyTable(history) {
    if (!history || history.length === 0) {
      return h('p', { class: 'muted', id: 'detail-history' }, 'Not handed to the agent yet.');
    }
    return h('div', { class: 'table-scroll' }, h('table', { class: 'table compact', id: 'detail-history' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'num' }, '#'), h('th', {}, 'Sent'), h('th', {}, 'Via'),
        h('th', {}, 'Outcome'), h('th', {}, 'At'), h('th', {}, 'Handler'), h('th', {}, 'Reason'))),
      h('tbody', {}, history.map((a) => h('tr', { dataset: { attempt: a.attempt, outcome: a.outcome || 'out' } },
        h('td', { class: 'num' }, String(a.attempt)),
        h('td', {}, fmtTime(a.sentAt)),
        h('td', {}, a.via || '—'),
        h('td', {}, a.outcome ? badge(a.outcome, `outcome-${a.outcome}`) : h('span', { class: 'muted' }, 'awaiting ack')),
        h('td', {}, fmtTime(a.at)),
        h('td', { class: 'mono' }, a.result ? `${a.result.status} · ${a.result.ms} ms` : '—'),
        h('td', { class: 'wrap' }, a.reason || ''))))));
  }

  function deliveryDetail(d, base, note, onNote, onClose) {
    const redeliverable = d.status !== 'rejected' && d.status !== 'duplicate';
    const discardable = d.status === 'queued' || d.status === 'sent';
    const discard = h('button', {
      type: 'button', id: 'discard', class: 'danger', disabled: !discardable,
      title: discardable ? 'Give it up: never hand it to the agent again' : 'It is not waiting for the agent',
    }, 'Discard');
    discard.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: 'Discard this delivery?',
        text: 'It becomes failed (“discarded”) and is not handed to the agent again; the deliveries behind it go on. It stays here, and Redeliver brings it back.',
        confirm: 'Discard',
        danger: true,
      });
      if (!ok) return;
      discard.disabled = true;
      try {
        await api('POST', `${base}/deliveries/${enc(d.deliveryId)}/discard`);
        result.textContent = 'Discarded.';
        onNote(result.textContent);
      } catch (err) {
        discard.disabled = false;
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      }
    });
    const result = h('span', { id: 'redeliver-result', class: 'muted', role: 'status' }, note);
    const redeliver = h('button', {
      type: 'button', id: 'redeliver', disabled: !redeliverable,
      title: redeliverable ? 'Queue it for the agent again' : 'It was never handed to the agent',
    }, 'Redeliver');
    redeliver.addEventListener('click', async () => {
      redeliver.disabled = true;
      try {
        await api('POST', `${base}/deliveries/${enc(d.deliveryId)}/redeliver`);
        result.textContent = 'Queued for the agent again.';
        onNote(result.textContent);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) showError(describe(err));
      } finally {
        redeliver.disabled = false;
      }
    });
    const headerRows = Object.entries(d.headers || {}).sort(([a], [b]) => a.localeCompare(b));
    let body = d.body;
    let cut = null;
    if (body.length > BODY_SHOWN) {
      // A body may be megabytes; the page shows its start rather than freezing.
      cut = `Showing the first ${BODY_SHOWN.toLocaleString()} of ${body.length.toLocaleString()} characters.`;
      body = body.slice(0, BODY_SHOWN);
    } else if (d.bodyEncoding === 'utf8') {
      try { body = JSON.stringify(JSON.parse(d.body), null, 2); } catch (_) { body = d.body; }
    }
    return h('section', { class: 'card detail', id: 'delivery-detail', dataset: { deliveryId: d.deliveryId, status: d.status, attempts: d.attempts } },
      h('div', { class: 'once-head' },
        h('h2', {}, 'Delivery'),
        h('button', { type: 'button', class: 'secondary small', id: 'close-detail', onclick: onClose }, 'Close')),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Id'), h('dd', { class: 'mono' }, breakable(d.deliveryId)),
        h('dt', {}, 'Status'), h('dd', {}, badge(d.status), d.reason ? ` ${d.reason}` : null),
        h('dt', {}, 'Event'), h('dd', {}, d.event ? breakable(d.event) : '—'),
        h('dt', {}, 'Verified'), h('dd', {}, d.verified ? 'yes' : 'no'),
        h('dt', {}, 'Received'), h('dd', {}, fmtTime(d.receivedAt)),
        h('dt', {}, 'Sent'), h('dd', {}, fmtTime(d.sentAt)),
        h('dt', {}, 'Acked'), h('dd', {}, fmtTime(d.ackedAt)),
        h('dt', {}, 'Attempts'), h('dd', {}, String(d.attempts))),
      h('div', { class: 'actions' }, redeliver, discard, result),
      h('h3', {}, 'Attempts'),
      historyTable(d.history),
      h('h3', {}, 'Headers'),
      h('table', { class: 'table compact', id: 'detail-headers' },
        h('tbody', {}, headerRows.map(([k, v]) => h('tr', {},
          h('th', { class: 'mono' }, k), h('td', { class: 'mono wrap' }, String(v)))))),
      h('h3', {}, 'Body', d.bodyEncoding === 'base64' ? h('span', { class: 'muted small' }, ' (binary, shown as base64)') : null,
        ` · ${fmtBytes(d.sizeBytes)}`),
      cut ? h('p', { class: 'hint' }, cut) : null,
      h('pre', { class: 'body', id: 'detail-body' }, body));
  }

  // ---- Start --------------------------------------------------------------------------

  async function start() {
    $('sign-out').addEventListener('click', signOut);
    $('rotate-owner-token').addEventListener('click', rotateOwnerToken);
    window.addEventListener('hashchange', route);
    if (document.body.hasAttribute('data-signed-out')) {
      // The hub saw no session cookie: no need to ask before showing the sign-in form.
      renderAccount();
      route();
      return;
    }
    try {
      await loadSession();
    } catch (err) {
      replace($('view'));
      showError(describe(err));
      return;
    }
    await route();
  }

  start();
}());
