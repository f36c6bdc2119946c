// Viopay Business (sandbox): each activated terminal's payments, and "Settle now".
// Loaded before portal.js, which creates one instance with its helpers and feeds it the
// charges it polls. Reads the charge objects of the sandbox helpers (spec 7.5, 7.12):
//   GET  /sandbox/terminals/{tid}/charges  -> {"terminal_id", "charges": [newest first]}
//   POST /sandbox/settle  {} | {"terminal_id"} -> {"settled_at", "batches": [...]}
// Every value comes from a server: it is checked, bounded, and only ever set as textContent.
'use strict';

window.ViopayPayments = (function () {
  // The newest payments shown per terminal; the rest are counted.
  const SHOWN = 20;
  // Payments are asked for at most this many terminals per poll (the first of the list given,
  // i.e. the most recently active): each one is a request every poll.
  const MAX_PANELS = 10;
  const TID_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const MINOR_RE = /^[0-9]{1,24}$/;
  const CURRENCY_RE = /^[A-Z]{3}$/;

  const STATUS_TEXT = {
    approved: 'Approved',
    declined: 'Declined',
    cancelled: 'Cancelled',
    partially_refunded: 'Partially refunded',
    refunded: 'Refunded',
  };
  const SETTLEMENT_TEXT = { pending: 'Pending', settled: 'Settled' };
  const BRAND_TEXT = {
    visa: 'Visa', mastercard: 'Mastercard', amex: 'Amex', discover: 'Discover',
    jcb: 'JCB', unionpay: 'UnionPay', unknown: 'Card',
  };

  const isTerminalId = (tid) => typeof tid === 'string' && TID_RE.test(tid);
  // A string field, cut to `max` characters; '' for anything else.
  const str = (v, max) => (typeof v === 'string' ? v.slice(0, max) : '');
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

  // Minor units (a string of digits) as major units with 2 decimals, by moving the point in
  // the string: '1650' -> '16.50', '5' -> '0.05'. null when it is not such a string.
  function major(value) {
    if (typeof value !== 'string' || !MINOR_RE.test(value)) return null;
    const digits = value.replace(/^0+(?=[0-9])/, '').padStart(3, '0');
    return digits.slice(0, -2) + '.' + digits.slice(-2);
  }

  const currencyOf = (m) => (CURRENCY_RE.test(str(obj(m).currency, 3)) ? obj(m).currency : '???');

  // {"value": "1650", "currency": "EUR"} -> 'EUR 16.50'; null when malformed.
  function money(m) {
    const v = major(obj(m).value);
    return v === null ? null : currencyOf(m) + ' ' + v;
  }

  const isZero = (m) => typeof obj(m).value === 'string' && /^0+$/.test(obj(m).value);

  // Adds amounts per currency as BigInt (exact), in the order the currencies first appear.
  function sumByCurrency(amounts) {
    const sums = new Map();
    for (const m of amounts) {
      const v = obj(m).value;
      if (typeof v !== 'string' || !MINOR_RE.test(v)) continue;
      const c = currencyOf(m);
      sums.set(c, (sums.get(c) || 0n) + BigInt(v));
    }
    const parts = [];
    for (const [c, v] of sums) parts.push(c + ' ' + major(v.toString()));
    return parts.join(' + ');
  }

  function formatWhen(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d)) return str(iso, 32) || '\u2014';
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    if (d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ', ' + time;
  }

  // One instance per page; `h` holds portal.js's helpers and its refresh().
  function create(h) {
    const { el, api, showMessage, clearMessage, unexpected, setBusy, isBusy } = h;
    // terminal id -> { row, tbody, note, empty, table, more, msg, button, seen }
    const panels = new Map();

    function pill(kind, known, text) {
      return el('span', 'pay-pill ' + kind + '-' + (known ? known : 'other'), text);
    }

    function cell(label, cls) {
      const td = el('td', cls);
      td.dataset.label = label;
      return td;
    }

    function paymentRow(c) {
      const status = str(c.status, 40);
      const settlement = str(obj(c.settlement).status, 20);
      const tr = el('tr', 'payment');
      tr.dataset.chargeId = str(c.charge_id, 64);
      tr.dataset.status = status;
      tr.dataset.settlement = settlement;

      const when = cell('Time', 'pay-time');
      const t = el('time', null, formatWhen(c.created_at));
      if (str(c.created_at, 32)) t.dateTime = str(c.created_at, 32);
      when.appendChild(t);

      const amount = cell('Amount', 'pay-amount');
      amount.appendChild(el('span', 'amount', money(c.total) || money(c.amount) || '\u2014'));
      if (c.tip && !isZero(c.tip) && money(c.tip)) {
        amount.appendChild(el('span', 'pay-sub', 'incl. tip ' + money(c.tip)));
      }

      const card = obj(c.card);
      const brand = str(card.brand, 20);
      const cardCell = cell('Card', 'pay-card');
      cardCell.append(
        el('span', 'card-brand', BRAND_TEXT[brand] || 'Card'),
        el('span', 'masked-pan', str(card.masked_pan, 32) || '\u2014'),
      );

      const st = cell('Status', 'pay-status');
      st.appendChild(pill('pay', STATUS_TEXT[status] ? status : null, STATUS_TEXT[status] || status || 'Unknown'));
      if (status === 'declined' && str(c.decline_code, 40)) {
        st.appendChild(el('span', 'pay-sub decline-code', str(c.decline_code, 40)));
      }
      if (c.partial_approval === true && money(c.approved_amount)) {
        st.appendChild(el('span', 'pay-sub', 'Partial: ' + money(c.approved_amount) + ' approved'));
      }
      if (c.refunded_amount && !isZero(c.refunded_amount) && money(c.refunded_amount)) {
        st.appendChild(el('span', 'pay-sub refunded-amount', money(c.refunded_amount) + ' refunded'));
      }

      const se = cell('Settlement', 'pay-settlement');
      if (SETTLEMENT_TEXT[settlement]) {
        const p = pill('settle', settlement, SETTLEMENT_TEXT[settlement]);
        const at = str(obj(c.settlement).settled_at, 32);
        if (at) p.title = 'Settled ' + new Date(at).toLocaleString();
        se.appendChild(p);
      } else {
        se.appendChild(el('span', 'none', '\u2014'));
        se.setAttribute('aria-label', 'Not settled');
      }

      tr.append(when, amount, cardCell, st, se);
      return tr;
    }

    function newPanel(tid) {
      const row = el('tr', 'payments-row');
      row.dataset.terminalId = tid;
      const td = el('td');
      td.colSpan = 4;
      const box = el('section', 'payments');
      box.setAttribute('aria-label', 'Payments on ' + tid);

      const head = el('div', 'payments-head');
      const title = el('div', 'payments-title');
      const note = el('span', 'payments-note');
      title.append(el('h3', null, 'Payments'), note);
      const button = el('button', 'btn btn-secondary settle-button', 'Settle now');
      button.type = 'button';
      button.dataset.terminalId = tid;
      button.setAttribute('aria-label', 'Settle now: ' + tid);
      button.addEventListener('click', () => settle(tid, button, msg));
      head.append(title, button);

      const msg = el('div', 'live-region settle-msg');
      msg.setAttribute('aria-live', 'polite');
      msg.setAttribute('aria-atomic', 'true');

      const empty = el('p', 'payments-empty', 'No payments yet. A sale on the terminal shows up here.');
      const table = el('table', 'payments-table');
      table.hidden = true;
      const caption = el('caption', 'visually-hidden', 'Payments on ' + tid + ', newest first');
      const thead = el('thead');
      const hr = el('tr');
      for (const name of ['Time', 'Amount', 'Card', 'Status', 'Settlement']) {
        const th = el('th', null, name);
        th.scope = 'col';
        hr.appendChild(th);
      }
      thead.appendChild(hr);
      const tbody = el('tbody');
      table.append(caption, thead, tbody);
      const more = el('p', 'payments-more');
      more.hidden = true;

      box.append(head, msg, empty, table, more);
      td.appendChild(box);
      row.appendChild(td);
      return { row, tbody, note, empty, table, more, msg, button, seen: null };
    }

    // The panel's rows from one answer of the charges helper. `answer` is the api() result,
    // or undefined when the terminal was not asked this time (its last rows stay).
    function update(p, answer) {
      if (!answer) return;
      if (!answer.ok || !answer.data || !Array.isArray(answer.data.charges)) {
        p.note.textContent = answer.status === 404 ? 'Not known to the payment service' : 'Payments could not be loaded';
        p.row.classList.add('is-stale');
        return;
      }
      p.row.classList.remove('is-stale');
      const all = answer.data.charges;
      const charges = all.slice(0, SHOWN).filter((c) => c && typeof c === 'object');
      const before = p.seen;
      const seen = new Map();
      const rows = charges.map((c) => {
        const tr = paymentRow(c);
        const state = tr.dataset.status + '/' + tr.dataset.settlement;
        if (before && before.get(tr.dataset.chargeId) !== state) tr.classList.add('is-changed');
        seen.set(tr.dataset.chargeId, state);
        return tr;
      });
      p.seen = seen;
      p.tbody.replaceChildren(...rows);
      p.table.hidden = rows.length === 0;
      p.empty.hidden = rows.length > 0;
      const total = Number.isSafeInteger(answer.data.total) ? answer.data.total : all.length;
      const rest = Math.max(0, total - charges.length);
      p.more.hidden = rest <= 0;
      p.more.textContent = rest === 1 ? 'and 1 earlier payment' : 'and ' + rest.toLocaleString() + ' earlier payments';
      const pending = Number.isSafeInteger(answer.data.pending)
        ? answer.data.pending
        : all.filter((c) => obj(obj(c).settlement).status === 'pending').length;
      const count = total === 1 ? '1 payment' : total.toLocaleString() + ' payments';
      p.note.textContent = total === 0 ? '' : count + (pending ? ' \u00b7 ' + pending + ' to settle' : '');
    }

    // The persistent panel of `tid` (created once, so that its button keeps the focus and its
    // message stays while the list is polled), updated with `answer`.
    function panel(tid, answer) {
      let p = panels.get(tid);
      if (!p) {
        p = newPanel(tid);
        panels.set(tid, p);
      }
      update(p, answer);
      return p.row;
    }

    // Drops the panels of terminals no longer listed.
    function keepOnly(tids) {
      for (const tid of [...panels.keys()]) if (!tids.has(tid)) panels.delete(tid);
    }

    const reset = () => panels.clear();

    // The charges of the first MAX_PANELS terminals of `tids`, asked in parallel:
    // Map tid -> answer.
    async function fetchAll(tids) {
      const list = [...new Set(tids)].filter(isTerminalId).slice(0, MAX_PANELS);
      const answers = await Promise.all(
        list.map((tid) => api('GET', '/sandbox/terminals/' + encodeURIComponent(tid) + '/charges?limit=' + SHOWN)),
      );
      return new Map(list.map((tid, i) => [tid, answers[i]]));
    }

    // The words for a settle answer: [kind, title, body].
    function settled(data, tid) {
      const batches = Array.isArray(obj(data).batches) ? data.batches.filter((b) => b && typeof b === 'object') : [];
      const count = batches.reduce((n, b) => n + (Array.isArray(b.charge_ids) ? b.charge_ids.length : 0), 0);
      if (count === 0) {
        return ['info', 'Nothing to settle', tid ? tid + ' has no pending payments.' : 'No terminal has pending payments.'];
      }
      const total = sumByCurrency(batches.map((b) => b.total));
      const what = count === 1 ? '1 payment' : count.toLocaleString() + ' payments';
      let where;
      if (tid) {
        where = 'batch ' + str(batches[0].batch_id, 40);
      } else {
        const tids = batches.map((b) => str(b.terminal_id, 64)).filter(Boolean);
        const named = tids.slice(0, 3).join(', ') + (tids.length > 3 ? ' and ' + (tids.length - 3) + ' more' : '');
        where = (batches.length === 1 ? '1 batch' : batches.length + ' batches') + (named ? ' (' + named + ')' : '');
      }
      return ['success', 'Settled ' + what, 'Total ' + total + ' \u00b7 ' + where];
    }

    // POST /sandbox/settle for one terminal (tid) or all (tid null); says what happened in
    // `region` and then calls h.refresh().
    async function settle(tid, button, region) {
      if (isBusy(button)) return;
      setBusy(button, true, 'Settling\u2026');
      clearMessage(region);
      try {
        const r = await api('POST', '/sandbox/settle', tid ? { terminal_id: tid } : {});
        if (r.ok && r.data) {
          showMessage(region, ...settled(r.data, tid));
        } else if (r.status === 404 && tid) {
          showMessage(region, 'error', 'Terminal not found', 'The payment service does not know ' + tid + '.');
        } else {
          showMessage(region, 'error', ...unexpected(r));
        }
      } finally {
        setBusy(button, false);
      }
      h.refresh();
    }

    return { panel, keepOnly, reset, fetchAll, settle, isTerminalId };
  }

  // The formatting is exposed for the browser test.
  return Object.assign(create, { major, money, sumByCurrency });
})();
