// Viopay Business (sandbox): sign in, add a terminal by its pairing code, watch it activate,
// then watch its payments and settle them (portal-payments.js, loaded first).
// Plain browser JavaScript, no libraries; talks only to the server that served the page.
'use strict';

(function () {
  const POLL_MS = 1500;
  const SESSION_KEY = 'viopay-portal-session';
  const CODE_LEN = 6;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // A decorative 24x24 icon from one SVG path (the SVG namespace is a name, not a download).
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function icon(d, cls) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    if (cls) svg.setAttribute('class', cls);
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    path.setAttribute('fill', 'currentColor');
    svg.appendChild(path);
    return svg;
  }

  // The merchant session lives in this tab only (sessionStorage), so a reload keeps it.
  let session = null;
  let pollGeneration = 0;
  let pollTimer = null;
  const knownStatus = new Map();
  let firstRender = true;
  let payments = null; // created in start(), with this file's helpers

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      return s && typeof s.token === 'string' ? s : null;
    } catch (_) {
      return null;
    }
  }
  function saveSession() {
    try {
      if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
      else sessionStorage.removeItem(SESSION_KEY);
    } catch (_) { /* storage disabled: the session just won't survive a reload */ }
  }

  // Same rule as the server's: drop spaces and dashes (any dash-like character), upper-case.
  function normaliseCode(raw) {
    return raw.replace(/[\s\u002d\u2010-\u2015\u2212]+/g, '').toUpperCase();
  }

  async function api(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (_) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (_) { /* not JSON: treated as an unexpected answer below */ }
    return { ok: resp.ok, status: resp.status, data };
  }
  const errorOf = (r) => (r.data && r.data.error) || {};

  // ---- messages (rendered into aria-live regions that always stay in the page) ----

  const ICONS = {
    error: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm1 15h-2v-2h2v2Zm0-4h-2V7h2v6Z',
    success: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm-1.5 14.5-4-4 1.4-1.4 2.6 2.6 5.6-5.6 1.4 1.4-7 7Z',
    info: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm1 15h-2v-6h2v6Zm0-8h-2V7h2v2Z',
  };

  function showMessage(region, kind, title, body, ref) {
    const box = el('div', 'alert alert-' + kind);
    box.dataset.kind = kind;
    const svg = icon(ICONS[kind], 'alert-icon');
    const text = el('div');
    text.appendChild(el('p', 'alert-title', title));
    if (body) text.appendChild(el('p', 'alert-body', body));
    if (ref) text.appendChild(el('p', 'alert-ref', ref));
    box.append(svg, text);
    region.replaceChildren(box);
  }
  const clearMessage = (region) => region.replaceChildren();

  // An answer nobody planned for (faults, a proxy in the way): say so, with the trace id.
  function unexpected(r) {
    if (r.status === 0) {
      return ['Can\u2019t reach Viopay', 'Check your connection and that the sandbox is still running, then try again.', null];
    }
    const e = errorOf(r);
    const busy = r.status === 429 || r.status >= 500;
    return [
      busy ? 'Viopay is busy right now' : 'Something went wrong',
      busy ? 'Please try again in a moment.' : (e.message || 'The server gave an answer this page doesn\u2019t understand.'),
      'HTTP ' + r.status + (e.code ? ' \u00b7 code ' + e.code : '') + (e.trace_id ? ' \u00b7 trace ' + e.trace_id : ''),
    ];
  }

  function setBusy(button, busy, label) {
    if (busy) {
      button.dataset.label = button.textContent;
      button.textContent = label;
      button.setAttribute('aria-disabled', 'true');
    } else {
      button.textContent = button.dataset.label || button.textContent;
      button.removeAttribute('aria-disabled');
    }
  }
  const isBusy = (button) => button.getAttribute('aria-disabled') === 'true';

  // ---- sign in / out ----

  async function signIn(event) {
    event.preventDefault();
    const button = $('signin-button');
    if (isBusy(button)) return;
    const region = $('signin-msg');
    const id = $('client-id').value.trim();
    const secret = $('client-secret').value;
    $('client-id').removeAttribute('aria-invalid');
    $('client-secret').removeAttribute('aria-invalid');
    if (!id || !secret) {
      const missing = !id ? $('client-id') : $('client-secret');
      missing.setAttribute('aria-invalid', 'true');
      showMessage(region, 'error', 'Enter your client ID and secret', 'Both are needed to sign in.');
      missing.focus();
      return;
    }
    setBusy(button, true, 'Signing in\u2026');
    clearMessage(region);
    try {
      const r = await api('POST', '/client/session', { client_id: id, client_secret: secret });
      if (!r.ok || !r.data || !r.data.access_token) {
        if (r.status === 401) {
          $('client-secret').setAttribute('aria-invalid', 'true');
          showMessage(region, 'error', 'Those credentials didn\u2019t work', 'The client ID and secret don\u2019t match a merchant account. Check them and try again.');
        } else {
          showMessage(region, 'error', ...unexpected(r));
        }
        return;
      }
      const token = r.data.access_token;
      const s = await api('POST', '/session/initiate', { host: location.host || 'merchant.viopay.io' }, token);
      if (!s.ok || !s.data) {
        showMessage(region, 'error', ...unexpected(s));
        return;
      }
      session = { token, merchantName: s.data.merchant_name || 'Merchant', merchantId: s.data.merchant_id || '' };
      saveSession();
      enterApp();
    } finally {
      setBusy(button, false);
    }
  }

  function signOut(reason) {
    session = null;
    saveSession();
    pollGeneration += 1;
    clearTimeout(pollTimer);
    knownStatus.clear();
    firstRender = true;
    $('terminal-rows').replaceChildren();
    payments.reset();
    clearMessage($('settle-all-msg'));
    clearMessage($('claim-msg'));
    $('app-view').hidden = true;
    $('account').hidden = true;
    $('signin-view').hidden = false;
    updateCodeNote();
    if (reason) showMessage($('signin-msg'), 'info', reason, 'Sign in again to carry on.');
    else clearMessage($('signin-msg'));
    document.title = 'Sign in \u00b7 Viopay Business (sandbox)';
    $('client-id').focus();
  }

  function initials(name) {
    const words = name.split(/\s+/).filter(Boolean);
    return ((words[0] || '?')[0] + (words.length > 1 ? words[words.length - 1][0] : '')).toUpperCase();
  }

  function enterApp() {
    $('merchant-name').textContent = session.merchantName;
    $('merchant-id').textContent = session.merchantId;
    $('avatar').textContent = initials(session.merchantName);
    $('signin-view').hidden = true;
    $('app-view').hidden = false;
    $('account').hidden = false;
    clearMessage($('signin-msg'));
    document.title = 'Terminals \u00b7 Viopay Business (sandbox)';
    const code = $('pairing-code');
    code.focus();
    if (code.value) code.select();
    startPolling();
  }

  function updateCodeNote() {
    const code = normaliseCode($('pairing-code').value);
    $('signin-code').textContent = code;
    $('signin-code-note').hidden = code.length === 0;
  }

  // ---- add a terminal ----

  // Each documented answer of POST /pos/claim in words a merchant understands.
  function claimFailure(r, code) {
    const e = errorOf(r);
    switch (r.status) {
      case 400:
        return ['That isn\u2019t a valid code', 'Enter the 6 letters and digits shown on the terminal\u2019s screen.'];
      case 404:
        return ['Code not found', 'No terminal is showing the code ' + code + '. Check the code on the terminal\u2019s screen and try again.'];
      case 410:
        return ['Code expired', 'The code ' + code + ' has expired. The terminal shows a new code by itself: enter that one.'];
      case 409:
        return ['Code already used', 'The code ' + code + ' has already been used to add a terminal. If it isn\u2019t in your list, ask the terminal for a new code.'];
      case 403:
        if (e.message === 'Session not initiated') return null; // handled as a sign-in problem
        return ['This terminal belongs to another merchant', 'It is registered to a different Viopay account. Check the code, or sign in with the account that owns the terminal.'];
      default:
        return unexpected(r);
    }
  }

  async function claim(event) {
    event.preventDefault();
    const button = $('claim-button');
    if (isBusy(button) || !session) return;
    const input = $('pairing-code');
    const region = $('claim-msg');
    const code = normaliseCode(input.value);
    input.removeAttribute('aria-invalid');
    if (code.length !== CODE_LEN) {
      input.setAttribute('aria-invalid', 'true');
      showMessage(region, 'error', code.length === 0 ? 'Enter the pairing code' : 'A pairing code has 6 characters',
        'Type the 6 letters and digits shown on the terminal\u2019s screen.');
      input.focus();
      return;
    }
    setBusy(button, true, 'Adding\u2026');
    clearMessage(region);
    try {
      const r = await api('POST', '/pos/claim', { pairing_code: code }, session.token);
      if (r.ok && r.data) {
        input.value = '';
        showMessage(region, 'success', 'Terminal added',
          r.data.device_id + ' is now yours. It is setting itself up and will show as Activated in a moment.');
        pollNow();
        return;
      }
      if (r.status === 401) {
        signOut('Your session has expired');
        return;
      }
      const failure = claimFailure(r, code);
      if (!failure) {
        signOut('Please sign in again');
        return;
      }
      input.setAttribute('aria-invalid', r.status >= 400 && r.status < 500 ? 'true' : 'false');
      showMessage(region, 'error', ...failure);
      input.focus();
      input.select();
    } finally {
      setBusy(button, false);
    }
  }

  // ---- the live list ----

  const STATUS_TEXT = { inactive: 'Inactive', claimed: 'Claimed', activated: 'Activated' };

  function statusDetail(t) {
    if (t.device_status === 'claimed') return 'Setting up';
    if (t.device_status === 'activated') {
      return t.activated_at ? 'Since ' + formatTime(t.activated_at) : 'Ready for payments';
    }
    switch (t.pairing_code_status) {
      case 'pending': return 'Showing a code';
      case 'expired': return 'Code expired';
      case 'used': return 'Code used';
      default: return 'No code yet';
    }
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleDateString([], { day: 'numeric', month: 'short' });
  }

  function ago(secs) {
    if (secs === null || secs === undefined) return null;
    if (secs < 5) return 'Just now';
    if (secs < 60) return secs + ' s ago';
    if (secs < 3600) return Math.floor(secs / 60) + ' min ago';
    if (secs < 86400) return Math.floor(secs / 3600) + ' h ago';
    return Math.floor(secs / 86400) + ' d ago';
  }

  const TERMINAL_ICON = 'M7 2h10a2 2 0 0 1 2 2v16a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2Zm0 2v7h10V4H7Zm1.5 10a1 1 0 1 0 0 2 1 1 0 0 0 0-2Zm3.5 0a1 1 0 1 0 0 2 1 1 0 0 0 0-2Zm3.5 0a1 1 0 1 0 0 2 1 1 0 0 0 0-2Zm-7 3.5a1 1 0 1 0 0 2 1 1 0 0 0 0-2Zm3.5 0a1 1 0 1 0 0 2 1 1 0 0 0 0-2Zm3.5 0a1 1 0 1 0 0 2 1 1 0 0 0 0-2Z';

  function row(t) {
    const tr = el('tr');
    tr.dataset.deviceId = t.device_id;
    tr.dataset.status = t.device_status;

    const who = el('td');
    const device = el('div', 'device');
    const badge = el('span', 'device-icon');
    badge.appendChild(icon(TERMINAL_ICON));
    const names = el('div');
    names.append(el('div', 'device-id', t.device_id), el('div', 'device-model', t.model || 'Model not reported'));
    device.append(badge, names);
    who.appendChild(device);

    const status = el('td', 'status-cell');
    status.dataset.label = 'Status';
    const wrap = el('div', 'status-wrap');
    wrap.append(
      el('span', 'status status-' + t.device_status, STATUS_TEXT[t.device_status] || t.device_status),
      el('span', 'status-sub', statusDetail(t)),
    );
    status.appendChild(wrap);

    const tid = el('td');
    tid.dataset.label = 'Terminal ID';
    tid.appendChild(t.terminal_id ? el('span', 'tid', t.terminal_id) : el('span', 'none', 'Not assigned'));

    const seen = el('td');
    seen.dataset.label = 'Last seen';
    const when = ago(t.last_seen_secs_ago);
    const s = el('span', when ? 'seen' : 'none', when || 'Never');
    if (t.last_seen) s.title = new Date(t.last_seen).toLocaleString();
    seen.appendChild(s);

    tr.append(who, status, tid, seen);
    return tr;
  }

  // An activated terminal's id, when it is one the payment helpers can be asked about.
  const paymentsTid = (t) => (t.device_status === 'activated' && payments.isTerminalId(t.terminal_id) ? t.terminal_id : null);

  // Puts exactly `nodes` into `parent`, in order, moving only what is out of place: the
  // payments panels are kept, so a focused "Settle now" button keeps its focus while polling.
  function reconcile(parent, nodes) {
    const keep = new Set(nodes);
    for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
    nodes.forEach((node, i) => {
      if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
    });
  }

  // `charges`: Map terminal id -> answer of the charges helper, for the terminals whose
  // payments are shown (see portal-payments.js).
  function render(data, charges) {
    const list = (data.terminals || []).slice().sort((a, b) => a.device_id.localeCompare(b.device_id));
    const counts = { inactive: 0, claimed: 0, activated: 0 };
    const rows = [];
    const tids = new Set();
    for (const t of list) {
      counts[t.device_status] = (counts[t.device_status] || 0) + 1;
      const tr = row(t);
      tr.classList.add('terminal-row');
      const before = knownStatus.get(t.device_id);
      if (!firstRender && before !== t.device_status) tr.classList.add('is-changed');
      knownStatus.set(t.device_id, t.device_status);
      rows.push(tr);
      const tid = paymentsTid(t);
      if (tid && charges.has(tid) && !tids.has(tid)) {
        tids.add(tid);
        tr.classList.add('has-payments');
        rows.push(payments.panel(tid, charges.get(tid)));
      }
    }
    firstRender = false;
    payments.keepOnly(tids);
    reconcile($('terminal-rows'), rows);
    $('settle-all').hidden = tids.size === 0;
    $('terminals').hidden = rows.length === 0;
    $('empty').hidden = rows.length > 0;
    $('count-activated').textContent = counts.activated;
    $('count-claimed').textContent = counts.claimed;
    $('count-inactive').textContent = counts.inactive;
    const total = data.total || 0;
    $('list-note').textContent = (total > list.length
      ? 'The ' + list.length + ' most recently active of ' + total.toLocaleString() + ' terminals'
      : (list.length === 1 ? '1 terminal' : list.length + ' terminals'))
      + (counts.activated > tids.size ? ' \u00b7 payments of the ' + tids.size + ' most recently active' : '');
  }

  function setLive(ok) {
    $('live').classList.toggle('is-offline', !ok);
    $('live-text').textContent = ok ? 'Live' : 'Reconnecting\u2026';
  }

  async function poll(generation) {
    if (!session || generation !== pollGeneration) return;
    const r = await api('GET', '/sandbox/portal/terminals', undefined, session.token);
    if (!session || generation !== pollGeneration) return;
    if (r.status === 401) {
      signOut('Your session has expired');
      return;
    }
    if (r.ok && r.data) {
      // The server lists the most recently active first: those are the ones with payments shown.
      const tids = (Array.isArray(r.data.terminals) ? r.data.terminals : []).map(paymentsTid).filter(Boolean);
      const charges = await payments.fetchAll(tids);
      if (!session || generation !== pollGeneration) return;
      render(r.data, charges);
    }
    setLive(r.ok);
    pollTimer = setTimeout(() => poll(generation), POLL_MS);
  }

  function startPolling() {
    pollGeneration += 1;
    clearTimeout(pollTimer);
    poll(pollGeneration);
  }
  const pollNow = startPolling;

  // ---- start ----

  function start() {
    payments = window.ViopayPayments({
      el, api, showMessage, clearMessage, unexpected, setBusy, isBusy, refresh: () => pollNow(),
    });
    const settleAll = $('settle-all');
    settleAll.addEventListener('click', () => payments.settle(null, settleAll, $('settle-all-msg')));
    $('signin-form').addEventListener('submit', signIn);
    $('claim-form').addEventListener('submit', claim);
    $('sign-out').addEventListener('click', () => signOut(null));
    $('pairing-code').addEventListener('input', () => $('pairing-code').removeAttribute('aria-invalid'));
    updateCodeNote();
    session = loadSession();
    if (session) enterApp();
    else $('client-id').focus();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
