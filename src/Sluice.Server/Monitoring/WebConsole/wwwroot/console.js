// Sluice web console: polls the monitoring port's JSON views every 2 s and renders them; the three actions
// (create, delete, pause) are sent with the CSRF token after a confirmation. No framework, no inline script (CSP).
'use strict';

const POLL_MS = 2000;
const CSRF_COOKIE = 'sluice_csrf';
const CSRF_HEADER = 'X-Sluice-Csrf';
const TABS = ['overview', 'streams', 'partitions', 'groups', 'cursors', 'activity'];

const $ = (id) => document.getElementById(id);
const state = { tab: 'overview', data: {}, previous: null, rates: new Map(), partitionRates: new Map(), timer: 0, busy: false };

// ---------------------------------------------------------------- formatting

const nf = new Intl.NumberFormat('en-US');
function num(n) { return n === null || n === undefined ? '–' : nf.format(n); }
function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
}
function rate(r) {
  if (r === undefined || r === null) return '–';
  return r >= 100 ? nf.format(Math.round(r)) : r.toFixed(1);
}
function duration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400); const h = Math.floor((s % 86400) / 3600); const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}
function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// ---------------------------------------------------------------- DOM helpers (text only: names never become markup)

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
function pill(text, kind) { return el('span', { class: 'pill ' + (kind || '') }, text); }

// columns: [{ title, num?, mono?, cell(row) -> string|Node, cls?(row) }]; rowAttrs(row) -> attributes of the <tr>
function renderTable(table, columns, rows, empty, rowAttrs) {
  const head = el('thead', null, el('tr', null, columns.map((c) => el('th', { class: c.num ? 'num' : null, scope: 'col' }, c.title))));
  const body = el('tbody');
  if (rows.length === 0) {
    body.append(el('tr', null, el('td', { class: 'empty', colspan: String(columns.length) }, empty)));
  }
  for (const row of rows) {
    const attrs = rowAttrs ? rowAttrs(row) : {};
    body.append(el('tr', attrs, columns.map((c) => {
      const classes = [c.num ? 'num' : '', c.mono ? 'mono' : '', c.cls ? c.cls(row) : ''].filter(Boolean).join(' ');
      return el('td', { class: classes || null, 'data-col': c.key || null }, c.cell(row));
    })));
  }
  table.replaceChildren(head, body);
}

// ---------------------------------------------------------------- data

async function getJson(path) {
  const response = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
  if (!response.ok) {
    let message = response.status + ' ' + response.statusText;
    try { message = (await response.json()).error || message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return response.json();
}

function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === CSRF_COOKIE) return value.join('=');
  }
  return '';
}

async function act(method, path, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: { [CSRF_HEADER]: csrfToken() } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, error: 'the server did not answer: ' + e.message };
  }
  let result;
  try { result = await response.json(); } catch { result = { ok: response.ok, error: response.status + ' ' + response.statusText }; }
  if (!response.ok) result.ok = false;
  result.status = response.status;
  return result;
}

// Rates from two polls of monotonically growing counters; a counter that went down (a restart) starts over.
function updateRates(streams, partitions) {
  const now = performance.now();
  const prev = state.previous;
  const current = { at: now, streams: new Map(), partitions: new Map() };
  for (const s of streams) current.streams.set(s.name, [s.received_messages, s.sent_messages]);
  for (const p of partitions) current.partitions.set(p.stream + '/' + p.partition, [p.received_messages, p.sent_messages]);
  if (prev && now - prev.at > 500) {
    const dt = (now - prev.at) / 1000;
    const compute = (from, to, into) => {
      into.clear();
      for (const [key, [inNow, outNow]] of to) {
        const before = from.get(key);
        if (!before) continue;
        into.set(key, [Math.max(0, inNow - before[0]) / dt, Math.max(0, outNow - before[1]) / dt]);
      }
    };
    compute(prev.streams, current.streams, state.rates);
    compute(prev.partitions, current.partitions, state.partitionRates);
  }
  if (!prev || now - prev.at > 500) state.previous = current;
}

async function poll() {
  if (state.busy) return;
  state.busy = true;
  try {
    const wanted = { server: '/v1/server', cluster: '/v1/cluster', streams: '/v1/streams', partitions: '/v1/partitions' };
    if (state.tab === 'groups') wanted.groups = '/v1/groups';
    if (state.tab === 'cursors') wanted.cursors = '/v1/cursors';
    if (state.tab === 'activity') wanted.activity = '/v1/activity?limit=200';
    const entries = await Promise.all(Object.entries(wanted).map(async ([k, path]) => [k, await getJson(path)]));
    for (const [k, v] of entries) state.data[k] = v;
    updateRates(state.data.streams.streams, state.data.partitions.partitions);
    setHealth(true);
    render();
  } catch (e) {
    setHealth(false, e.message);
  } finally {
    state.busy = false;
  }
}

function setHealth(ok, message) {
  const health = $('health');
  health.className = 'pill ' + (ok ? 'ok' : 'bad');
  health.textContent = ok ? 'connected' : 'unreachable';
  health.title = ok ? '' : message || '';
  if (ok) $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

// ---------------------------------------------------------------- views

function underReplicated(p) { return p.isr.length < p.replicas.length; }

function render() {
  const d = state.data;
  if (d.server) $('server-id').textContent = d.server.server_id;
  switch (state.tab) {
    case 'overview': renderOverview(d); break;
    case 'streams': renderStreams(d); break;
    case 'partitions': renderPartitions(d); break;
    case 'groups': if (d.groups) renderGroups(d); break;
    case 'cursors': if (d.cursors) renderCursors(d); break;
    case 'activity': if (d.activity) renderActivity(d); break;
    default: break;
  }
}

function card(key, value, kind, id) {
  return el('div', { class: 'card ' + (kind || ''), id: id || null }, el('div', { class: 'k' }, key), el('div', { class: 'v' }, value));
}

function renderOverview(d) {
  const s = d.server; const c = d.cluster;
  const parts = d.partitions.partitions;
  const under = parts.filter(underReplicated).length;
  const offline = parts.filter((p) => p.offline).length;
  const paused = parts.filter((p) => p.paused).length;
  let inRate = 0; let outRate = 0;
  for (const [i, o] of state.rates.values()) { inRate += i; outRate += o; }
  $('cards').replaceChildren(
    card('Server', s.server_id, 'id', 'card-server'),
    card('Version', s.version || '–'),
    card('Uptime', duration(s.uptime_seconds)),
    card('Mode', s.clustered ? 'cluster' : 'single node'),
    card('Controller', c.controller || 'none', c.controller ? 'id' : 'bad', 'card-controller'),
    card('Brokers', num(c.brokers.length), '', 'card-brokers'),
    card('Streams', num(s.streams)),
    card('Partitions', num(s.partitions)),
    card('Led here', num(s.partitions_led)),
    card('Under-replicated', num(under), under > 0 ? 'bad' : '', 'card-under-replicated'),
    card('Offline', num(offline), offline > 0 ? 'bad' : '', 'card-offline'),
    card('Paused', num(paused), paused > 0 ? 'warn' : ''),
    card('In msg/s', rate(inRate), '', 'card-in-rate'),
    card('Out msg/s', rate(outRate), '', 'card-out-rate'),
    card('Connections', num(s.connections)),
    card('Working set', bytes(s.memory.working_set_bytes)),
  );
  renderTable($('brokers-table'), [
    { title: 'Broker', mono: true, cell: (b) => b.id },
    { title: 'Role', cell: (b) => b.id === c.controller ? pill('controller', 'info') : '' },
    { title: 'Address', mono: true, cell: (b) => b.host + ':' + b.port },
    { title: 'Partitions', num: true, cell: (b) => num(b.partitions) },
    { title: 'Leaders', num: true, cell: (b) => num(b.leaders) },
    { title: 'This broker', cell: (b) => b.id === s.server_id ? pill('here', 'ok') : '' },
  ], c.brokers, 'No brokers registered', (b) => ({ 'data-broker': b.id }));
  const config = Object.entries(s.config).map(([k, v]) => ({ k, v }));
  renderTable($('config-table'), [
    { title: 'Setting', mono: true, cell: (r) => r.k },
    { title: 'Value', mono: true, cell: (r) => r.v === null ? '–' : String(r.v) },
  ], config, '');
}

function renderStreams(d) {
  const filter = $('streams-filter').value.trim().toLowerCase();
  const internal = $('streams-internal').checked;
  const paused = new Map();
  const readonly = new Map();
  for (const p of d.partitions.partitions) {
    if (p.paused) paused.set(p.stream, (paused.get(p.stream) || 0) + 1);
    if (p.readonly) readonly.set(p.stream, (readonly.get(p.stream) || 0) + 1);
  }
  const some = (counts, s, word, kind) => (counts.get(s.name)
    ? pill(counts.get(s.name) === s.partitions ? word : `${counts.get(s.name)} ${word}`, kind) : null);
  const rows = d.streams.streams.filter((s) => (internal || !s.internal) && (!filter || s.name.toLowerCase().includes(filter)));
  renderTable($('streams-table'), [
    { title: 'Stream', mono: true, cell: (s) => s.name },
    { title: 'Subject', mono: true, cell: (s) => s.subject },
    { title: 'Partitions', num: true, cell: (s) => num(s.partitions) },
    { title: 'RF', num: true, cell: (s) => s.replication_factor === -1 ? 'all' : num(s.replication_factor) },
    { title: 'State', cell: (s) => [s.internal ? pill('internal') : null, s.encrypted ? pill('encrypted', 'info') : null,
      some(paused, s, 'paused', 'warn'), some(readonly, s, 'readonly', 'info')] },
    { title: 'In msg/s', num: true, key: 'in-rate', cls: (s) => ((state.rates.get(s.name) || [0])[0] > 0 ? 'rate' : 'zero'), cell: (s) => rate((state.rates.get(s.name) || [])[0]) },
    { title: 'Out msg/s', num: true, key: 'out-rate', cls: (s) => ((state.rates.get(s.name) || [0, 0])[1] > 0 ? 'rate' : 'zero'), cell: (s) => rate((state.rates.get(s.name) || [])[1]) },
    { title: 'Received', num: true, key: 'received', cell: (s) => num(s.received_messages) },
    { title: 'Sent', num: true, cell: (s) => num(s.sent_messages) },
    { title: 'Size', num: true, cell: (s) => bytes(s.size_bytes) },
    { title: 'Segments', num: true, cell: (s) => num(s.segments) },
    { title: 'Created', cell: (s) => time(s.created) },
    { title: '', cls: () => 'actions', cell: (s) => s.internal ? '' : [
      el('button', { type: 'button', class: 'small', 'data-action': 'pause', onclick: () => confirmPause(s.name) }, 'Pause'),
      el('button', { type: 'button', class: 'small danger', 'data-action': 'delete', onclick: () => confirmDelete(s.name) }, 'Delete'),
    ] },
  ], rows, filter ? 'No stream matches the filter' : 'No streams yet: create one', (s) => ({ 'data-stream': s.name }));
}

function renderPartitions(d) {
  const filter = $('partitions-filter').value.trim().toLowerCase();
  const internal = $('partitions-internal').checked;
  const problems = $('partitions-problems').checked;
  const internalNames = new Set(d.streams.streams.filter((s) => s.internal).map((s) => s.name));
  const rows = d.partitions.partitions.filter((p) => (internal || !internalNames.has(p.stream))
    && (!filter || p.stream.toLowerCase().includes(filter))
    && (!problems || underReplicated(p) || p.offline || p.paused));
  const pr = (p) => state.partitionRates.get(p.stream + '/' + p.partition) || [];
  renderTable($('partitions-table'), [
    { title: 'Stream', mono: true, cell: (p) => p.stream },
    { title: 'Partition', num: true, cell: (p) => p.partition },
    { title: 'Leader', mono: true, key: 'leader', cell: (p) => p.leader || pill('none', 'bad') },
    // Replicas outside the ISR are named after it; all replicas are in the cell's tooltip.
    { title: 'ISR', mono: true, key: 'isr', cls: (p) => underReplicated(p) ? 'error' : '', cell: (p) => {
      const missing = p.replicas.filter((r) => !p.isr.includes(r));
      const span = el('span', { title: 'replicas: ' + p.replicas.join(', ') }, p.isr.join(', ') || '–');
      return missing.length ? [span, ` (out: ${missing.join(', ')})`] : span;
    } },
    { title: 'High watermark', num: true, key: 'hw', cell: (p) => num(p.high_watermark) },
    { title: 'Newest', num: true, key: 'newest', cell: (p) => num(p.newest_offset) },
    { title: 'Uncommitted', num: true, cell: (p) => num(Math.max(0, p.newest_offset - p.high_watermark)) },
    { title: 'In msg/s', num: true, cell: (p) => rate(pr(p)[0]) },
    { title: 'Out msg/s', num: true, cell: (p) => rate(pr(p)[1]) },
    { title: 'Size', num: true, key: 'size', cell: (p) => bytes(p.size_bytes) },
    { title: 'Segments', num: true, cell: (p) => num(p.segments) },
    { title: 'Subscribers', num: true, cell: (p) => num(p.subscribers) },
    { title: 'State', key: 'state', cell: (p) => [
      p.offline ? pill('offline', 'bad') : null,
      underReplicated(p) ? pill('under-replicated', 'bad') : null,
      p.paused ? pill('paused', 'warn') : null,
      p.readonly ? pill('readonly', 'info') : null,
      p.led_here ? pill('led here', 'ok') : null,
    ] },
    ...(rows.some((p) => p.offline) ? [{ title: 'Problem', cls: () => 'wrap', cell: (p) => p.offline || '' }] : []),
  ], rows, 'No partitions', (p) => ({
    'data-partition': p.stream + '/' + p.partition,
    class: p.offline || underReplicated(p) ? 'bad' : (p.paused ? 'warn' : null),
  }));
}

function renderGroups(d) {
  const groups = d.groups.groups;
  renderTable($('groups-table'), [
    { title: 'Group', mono: true, cell: (g) => g.id },
    { title: 'Coordinator', mono: true, cell: (g) => g.coordinator },
    { title: 'Epoch', num: true, cell: (g) => num(g.epoch) },
    { title: 'Members', num: true, cell: (g) => num(g.members.length) },
    { title: 'Members (streams)', mono: true, cls: () => 'wrap', cell: (g) => g.members.map((m) => `${m.id} (${m.streams.join(', ')})`).join('; ') },
    { title: 'Partitions', num: true, cell: (g) => num(g.partitions.length) },
    { title: 'Lag', num: true, key: 'lag', cls: (g) => (g.lag > 0 ? 'error' : ''), cell: (g) => num(g.lag) },
  ], groups, 'No consumer groups', (g) => ({ 'data-group': g.id }));
  const rows = groups.flatMap((g) => g.partitions.map((p) => ({ group: g.id, ...p })));
  renderTable($('group-partitions-table'), [
    { title: 'Group', mono: true, cell: (r) => r.group },
    { title: 'Stream', mono: true, cell: (r) => r.stream },
    { title: 'Partition', num: true, cell: (r) => r.partition },
    { title: 'Consumer', mono: true, cell: (r) => r.consumer },
    { title: 'Committed', num: true, key: 'committed', cell: (r) => num(r.committed_offset) },
    { title: 'High watermark', num: true, cell: (r) => num(r.high_watermark) },
    { title: 'Lag', num: true, key: 'lag', cls: (r) => (r.lag > 0 ? 'error' : ''), cell: (r) => num(r.lag) },
    { title: 'Problem', cls: () => 'wrap error', cell: (r) => r.error || '' },
  ], rows, 'No partitions assigned', (r) => ({ 'data-group-partition': `${r.group}/${r.stream}/${r.partition}` }));
}

function renderCursors(d) {
  const c = d.cursors;
  const notes = [];
  if (!c.enabled) notes.push('Cursors are off on this server (cursors.stream.partitions = 0 and no consumer group).');
  if (c.truncated) notes.push('Only the first cursors found are shown (the view reads a bounded part of __cursors).');
  if (c.elsewhere && c.elsewhere.length) notes.push(`__cursors partition(s) ${c.elsewhere.join(', ')} have no replica on this broker: their cursors are listed by the brokers that hold them.`);
  $('cursors-note').textContent = notes.join(' ');
  renderTable($('cursors-table'), [
    { title: 'Cursor', mono: true, cell: (r) => r.id },
    { title: 'Group', mono: true, cell: (r) => r.group || '' },
    { title: 'Stream', mono: true, cell: (r) => r.stream },
    { title: 'Partition', num: true, cell: (r) => r.partition },
    { title: 'Offset', num: true, key: 'offset', cell: (r) => num(r.offset) },
    { title: 'High watermark', num: true, cell: (r) => num(r.high_watermark) },
    { title: 'Lag', num: true, key: 'lag', cls: (r) => (r.lag > 0 ? 'error' : ''), cell: (r) => num(r.lag) },
    { title: 'Updated', cell: (r) => time(r.updated) },
  ], c.cursors, 'No cursors stored', (r) => ({ 'data-cursor': `${r.id}/${r.stream}/${r.partition}` }));
}

function activitySubject(e) {
  if (e.stream) return e.stream;
  if (e.group) return e.group;
  return '';
}

function activityDetails(e) {
  const out = [];
  if (e.partitions && e.partitions.length) out.push('partitions ' + e.partitions.join(', '));
  if (e.resume_all) out.push('resume all');
  if (e.readonly !== undefined) out.push(e.readonly ? 'readonly' : 'writable');
  if (e.consumer) out.push('consumer ' + e.consumer);
  if (e.streams) out.push('streams ' + e.streams.join(', '));
  if (e.expired) out.push('expired');
  if (e.reason) out.push(e.reason);
  if (e.epoch !== undefined) out.push('epoch ' + e.epoch);
  if (e.group_deleted) out.push('group deleted');
  return out.join('; ');
}

function renderActivity(d) {
  const a = d.activity;
  let note = '';
  if (!a.enabled) note = 'The activity stream is off (activity.stream.enabled: true turns it on).';
  else if (!a.here) note = `The activity stream's partition is on broker ${a.leader}: open its console to read it.`;
  $('activity-note').textContent = note;
  const kind = (op) => (op.startsWith('Delete') || op.startsWith('Leave') ? 'bad' : op.startsWith('Create') || op.startsWith('Join') ? 'ok' : 'info');
  renderTable($('activity-table'), [
    { title: 'Time', cell: (e) => time(e.time) },
    { title: 'Offset', num: true, cell: (e) => num(e.offset) },
    { title: 'Event', key: 'op', cell: (e) => pill(e.op, kind(e.op)) },
    { title: 'Stream or group', mono: true, key: 'subject', cell: activitySubject },
    { title: 'Details', cls: () => 'wrap', cell: activityDetails },
  ], a.events, a.enabled ? 'No events yet' : 'Activity stream off', (e) => ({ 'data-offset': String(e.offset) }));
}

// ---------------------------------------------------------------- actions

function notify(ok, text) {
  const notice = $('notice');
  notice.className = ok ? 'ok' : 'error';
  $('notice-text').textContent = text;
  notice.hidden = false;
}

let pendingConfirm = null;
function confirmAction({ title, text, ok, danger, typeToConfirm, run }) {
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  const okButton = $('confirm-ok');
  okButton.textContent = ok;
  okButton.className = danger ? 'danger' : 'primary';
  $('confirm-type-label').hidden = !typeToConfirm;
  $('confirm-type').value = '';
  $('confirm-expected').textContent = typeToConfirm || '';
  okButton.disabled = !!typeToConfirm;
  pendingConfirm = { run, typeToConfirm };
  $('confirm-dialog').showModal();
  if (typeToConfirm) $('confirm-type').focus(); else $('confirm-cancel').focus();
}

async function runAction(label, promise) {
  const result = await promise;
  notify(result.ok, result.ok ? result.message : `${label} failed (${result.status || 'no answer'}): ${result.error}`);
  state.previous = null;
  await poll();
}

function confirmDelete(name) {
  confirmAction({
    title: 'Delete stream',
    text: `Delete stream "${name}" and all of its messages on every broker? This cannot be undone.`,
    ok: 'Delete stream', danger: true, typeToConfirm: name,
    run: () => runAction('Delete', act('DELETE', '/v1/streams/' + encodeURIComponent(name))),
  });
}

function confirmPause(name) {
  confirmAction({
    title: 'Pause stream',
    text: `Pause every partition of "${name}"? Paused partitions close their files; a publish or a subscribe that asks to resume opens them again.`,
    ok: 'Pause stream', danger: false,
    run: () => runAction('Pause', act('POST', '/v1/streams/' + encodeURIComponent(name) + '/pause', {})),
  });
}

function openCreate() {
  $('create-form').reset();
  $('create-error').hidden = true;
  $('create-dialog').showModal();
  $('create-name').focus();
}

function reviewCreate(event) {
  event.preventDefault();
  const name = $('create-name').value.trim();
  const subject = $('create-subject').value.trim() || name;
  const partitions = parseInt($('create-partitions').value, 10);
  const rf = parseInt($('create-rf').value, 10);
  const problem = !name ? 'A name is required.'
    : !Number.isInteger(partitions) || partitions < 1 ? 'Partitions must be 1 or more.'
      : !Number.isInteger(rf) || rf === 0 || rf < -1 ? 'The replication factor must be 1 or more, or -1 for every broker.' : '';
  if (problem) {
    $('create-error').textContent = problem;
    $('create-error').hidden = false;
    return;
  }
  $('create-dialog').close();
  confirmAction({
    title: 'Create stream',
    text: `Create stream "${name}" on subject "${subject}" with ${partitions} partition(s) and replication factor ${rf === -1 ? 'all brokers' : rf}?`,
    ok: 'Create stream', danger: false,
    run: () => runAction('Create', act('POST', '/v1/streams', { name, subject, partitions, replication_factor: rf })),
  });
}

// ---------------------------------------------------------------- navigation and start

function showTab() {
  const wanted = location.hash.replace('#', '');
  state.tab = TABS.includes(wanted) ? wanted : 'overview';
  for (const section of document.querySelectorAll('[data-view]')) section.hidden = section.id !== state.tab;
  for (const link of document.querySelectorAll('#tabs a')) {
    if (link.dataset.tab === state.tab) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  document.title = 'Sluice · ' + document.querySelector(`#tabs a[data-tab="${state.tab}"]`).textContent;
  if (state.data.server) render();
  poll();
}

function start() {
  window.addEventListener('hashchange', showTab);
  $('create-open').addEventListener('click', openCreate);
  $('create-cancel').addEventListener('click', () => $('create-dialog').close());
  $('create-form').addEventListener('submit', reviewCreate);
  $('confirm-cancel').addEventListener('click', () => { pendingConfirm = null; $('confirm-dialog').close(); });
  $('confirm-type').addEventListener('input', () => {
    $('confirm-ok').disabled = !!pendingConfirm && !!pendingConfirm.typeToConfirm && $('confirm-type').value !== pendingConfirm.typeToConfirm;
  });
  $('confirm-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!pendingConfirm || $('confirm-ok').disabled) return;
    const { run } = pendingConfirm;
    pendingConfirm = null;
    $('confirm-dialog').close();
    run();
  });
  $('notice-close').addEventListener('click', () => { $('notice').hidden = true; });
  for (const id of ['streams-filter', 'streams-internal', 'partitions-filter', 'partitions-internal', 'partitions-problems']) {
    $(id).addEventListener('input', render);
  }
  showTab();
  state.timer = setInterval(poll, POLL_MS);
}

document.addEventListener('DOMContentLoaded', start);
