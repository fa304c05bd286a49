// The Meridian cluster dashboard. Renders the snapshots of /api/state
// (the first at load, then every one /api/events pushes, or by polling
// when events do not arrive) and sends actions and purges with the admin
// token. Plain DOM, no framework; every text from the server goes in as
// textContent, never as HTML.
'use strict';

const TOKEN_KEY = 'meridian-dashboard-token';
// `/?poll`: poll /api/state every second instead of following events (for
// headless browsers in virtual time, which an open event stream stalls).
const POLL_ONLY = new URLSearchParams(location.search).has('poll');
const STALE_MS = 2500; // no snapshot for this long: poll /api/state
const $ = (sel, root = document) => root.querySelector(sel);

// ---- the token: from the #token= fragment or the input, kept per tab ----
let memoryToken = '';
function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || memoryToken; } catch (e) { return memoryToken; }
}
function setToken(t) {
  memoryToken = t;
  try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage off: memory only */ }
  $('#token').placeholder = t ? 'token set' : 'admin token';
}
function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return;
  setToken(decodeURIComponent(m[1]));
  // Out of the address bar (and of screenshots); it never left the browser.
  history.replaceState(null, '', location.pathname + location.search);
}

// ---- formatting ----
const fmtRps = (x) => (x == null ? '–' : x < 10 ? x.toFixed(1) : Math.round(x).toString());
const fmtPct = (x) => (x == null ? '–' : (x * 100).toFixed(x > 0.995 && x < 1 ? 1 : 0) + '%');
const fmtInt = (x) => (x == null ? '–' : x.toLocaleString('en-US'));
function fmtBytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toString() : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}
const fmtTime = (ms) => (ms == null ? '' : new Date(ms).toLocaleTimeString('en-GB'));

function toast(text, bad) {
  const t = $('#toast');
  t.textContent = text;
  t.className = bad ? 'show bad' : 'show';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ''; }, 4000);
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// ---- the map: x = longitude, y = -latitude (the SVG's units are degrees) ----
const map = $('#map');
const SVG = map.namespaceURI;
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function drawGraticule() {
  const g = $('#graticule');
  for (let lon = -150; lon <= 150; lon += 30) g.append(svg('line', { x1: lon, y1: -90, x2: lon, y2: 90 }));
  for (let lat = -60; lat <= 60; lat += 30) g.append(svg('line', { x1: -180, y1: -lat, x2: 180, y2: -lat }));
}

// Nodes at (nearly) the same place (a region's edges, a shield beside an
// edge) are spread on a small circle round their centre, so each stays
// visible; each label goes on the outer side of its marker.
function positions(nodes) {
  const groups = [];
  for (const n of nodes) {
    const g = groups.find((g) => Math.hypot(g.x - n.longitude, g.y + n.latitude) < 3);
    if (g) g.names.push(n.name);
    else groups.push({ x: n.longitude, y: -n.latitude, names: [n.name] });
  }
  const at = new Map();
  for (const g of groups) {
    const k = g.names.length;
    const r = k > 1 ? 1.6 + 0.5 * k : 0;
    g.names.forEach((name, i) => {
      const a = (2 * Math.PI * i) / k - Math.PI / 2;
      at.set(name, { x: g.x + r * Math.cos(a), y: g.y + r * Math.sin(a), left: k > 1 && Math.cos(a) < -0.01 });
    });
  }
  return at;
}

let built = ''; // the node names the page was built for
const cards = new Map();
const markers = new Map();
const linkEls = [];

function build(s) {
  const at = positions(s.nodes);
  const links = $('#links');
  const marks = $('#markers');
  const grid = $('#nodes');
  links.replaceChildren();
  marks.replaceChildren();
  grid.replaceChildren();
  cards.clear();
  markers.clear();
  linkEls.length = 0;
  const rtts = [];
  for (const l of s.links) {
    const a = at.get(l.from);
    const b = at.get(l.to);
    if (!a || !b) continue;
    const line = svg('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: 'link', 'data-from': l.from, 'data-to': l.to });
    line.append(svg('title', {}, l.from + ' → ' + l.to + ': ' + l.rtt_ms.toFixed(0) + ' ms round trip'));
    links.append(line);
    linkEls.push({ l, line });
    // One label for links that run side by side (a region's edges to one shield).
    const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 0.8, text: l.rtt_ms.toFixed(0) + ' ms' };
    if (!rtts.some((r) => r.text === mid.text && Math.hypot(r.x - mid.x, r.y - mid.y) < 5)) {
      rtts.push(mid);
      links.append(svg('text', { x: mid.x, y: mid.y, class: 'rtt' }, mid.text));
    }
  }
  for (const n of s.nodes) {
    const p = at.get(n.name);
    const g = svg('g', { class: 'marker ' + n.kind });
    const circle = svg('circle', { cx: p.x, cy: p.y, r: n.kind === 'edge' ? 1.8 : 2.4, 'data-node': n.name });
    circle.append(svg('title', {}, n.name + ' (' + n.kind + ', ' + n.region + ')'));
    // Labels go right of the marker, or left when a neighbour sits there.
    const crowded = p.left || [...at.values()].some((q) => q.x > p.x && q.x - p.x < 14 && Math.abs(q.y - p.y) < 4);
    const label = crowded
      ? svg('text', { x: p.x - 3, y: p.y + 1.2, class: 'label', 'text-anchor': 'end' }, n.name)
      : svg('text', { x: p.x + 3, y: p.y + 1.2, class: 'label' }, n.name);
    g.append(circle, label);
    marks.append(g);
    markers.set(n.name, circle);

    const card = $('#node-card').content.firstElementChild.cloneNode(true);
    card.dataset.node = n.name;
    card.dataset.kind = n.kind;
    $('.name', card).textContent = n.name;
    $('.sub', card).textContent = n.kind + ' · ' + n.region;
    for (const b of card.querySelectorAll('button')) {
      // Every client's first request goes through the director: it is
      // not stopped or failed from here.
      if (n.kind === 'director') b.remove();
      else b.addEventListener('click', () => act(n.name, b.dataset.action));
    }
    grid.append(card);
    cards.set(n.name, card);
  }
  built = s.nodes.map((n) => n.name).join('\n');
}

function renderNode(n) {
  const card = cards.get(n.name);
  const x = n.numbers;
  card.dataset.state = n.state;
  card.dataset.rps = x ? x.rps.toFixed(1) : '0.0';
  card.dataset.requests = x ? String(x.requests) : '';
  card.dataset.hitRatio = x && x.hit_ratio != null ? x.hit_ratio.toFixed(3) : '';
  card.dataset.bytes = x && x.bytes_served != null ? String(x.bytes_served) : '';
  card.dataset.entries = x ? String(x.entries) : '';
  const fault = n.fault.state === 'slow' ? 'slow +' + n.fault.ms + ' ms' : n.state;
  $('.state', card).textContent = fault;
  $('.v-rps', card).textContent = x ? fmtRps(x.rps) : '–';
  $('.v-requests', card).textContent = x ? fmtInt(x.requests) : '–';
  $('.v-hit', card).textContent = x && x.hit_ratio != null ? fmtPct(x.hit_ratio) : '–';
  $('.v-hit-now', card).textContent = x && x.recent_hit_ratio != null ? 'now ' + fmtPct(x.recent_hit_ratio) : '';
  $('.v-offload', card).textContent = x ? fmtPct(x.offload) : '–';
  $('.v-bytes', card).textContent = x ? fmtBytes(x.bytes_served) : '–';
  $('.v-entries', card).textContent = x && n.kind !== 'origin' ? fmtInt(x.entries) : '–';
  const notes = [];
  if (n.reason) notes.push(n.reason);
  if (n.director_healthy === false) notes.push('director: unhealthy');
  if (n.purge) notes.push('purge log: applied #' + n.purge.applied + (n.purge.behind ? ', ' + n.purge.behind + ' behind' : '') + (n.purge.lagging ? ', lagging' : ''));
  $('.note', card).textContent = notes.join(' · ');
  const stopped = n.fault.state === 'stopped';
  const faulted = n.fault.state === 'slow' || n.fault.state === 'failing';
  for (const b of card.querySelectorAll('button')) {
    const a = b.dataset.action;
    b.disabled = (a === 'start') !== stopped || (a === 'heal' && !faulted);
  }
  const m = markers.get(n.name);
  m.dataset.state = n.state;
  m.setAttribute('class', n.state);
}

function renderTotals(s) {
  const t = s.totals;
  $('#t-up').textContent = t.nodes_up + ' / ' + t.nodes;
  $('#t-rps').textContent = fmtRps(t.edge_rps);
  $('#t-hit').textContent = fmtPct(t.edge_recent_hit_ratio);
  $('#t-offload').textContent = fmtPct(t.offload);
  $('#t-offload').title = 'since start; last interval ' + fmtPct(t.recent_offload) + '; bytes ' + fmtPct(t.byte_offload);
  $('#t-bytes').textContent = fmtBytes(t.edge_bytes_served);
  $('#t-origin').textContent = fmtRps(t.origin_rps);
}

function renderPurges(s) {
  const box = $('#recent');
  if (!s.purges.length) {
    const p = el('p', { class: 'muted' }, s.purge_log.reachable ? 'none yet' : 'purge log: ' + (s.purge_log.error || 'unreachable'));
    box.replaceChildren(p);
    return;
  }
  const items = s.purges.map((r) => {
    const item = el('div', { class: 'purge', 'data-seq': r.seq });
    const head = el('div', { class: 'purge-head' });
    head.append(el('b', {}, '#' + r.seq), el('span', {}, r.summary || '(sent elsewhere)'));
    if (r.soft) head.append(el('span', { class: 'tag' }, 'soft'));
    head.append(el('span', { class: 'muted' }, r.at_ms ? fmtTime(r.at_ms) : 'before the dashboard'));
    const chips = el('div', { class: 'chips' });
    for (const n of r.nodes) {
      let text = n.node + ' ';
      if (n.state === 'applied') text += n.ms != null ? '+' + n.ms.toFixed(0) + ' ms' : n.at_ms ? 'by ' + fmtTime(n.at_ms) : '✓';
      else text += n.state;
      const chip = el('span', { class: 'chip ' + n.state, 'data-node': n.node, 'data-state': n.state }, text);
      if (n.error) chip.title = n.error;
      chips.append(chip);
    }
    item.append(head, chips);
    return item;
  });
  box.replaceChildren(...items);
}

let lastAt = 0;
function render(s) {
  if (!s || !Array.isArray(s.nodes)) return; // before the first poll
  lastAt = Date.now();
  const names = s.nodes.map((n) => n.name).join('\n');
  if (names !== built) build(s);
  for (const n of s.nodes) renderNode(n);
  for (const { l, line } of linkEls) {
    const now = s.links.find((x) => x.from === l.from && x.to === l.to);
    line.setAttribute('class', 'link ' + (now && now.up ? 'up' : 'down'));
  }
  renderTotals(s);
  renderPurges(s);
  document.body.dataset.generatedAt = String(s.generated_at);
}

// ---- live updates: events, with polling when they stall ----
function setConn(state) {
  const c = $('#conn');
  c.dataset.conn = state;
  c.textContent = state;
}

async function poll() {
  try {
    const r = await fetch('/api/state', { cache: 'no-store' });
    if (r.ok) render(await r.json());
  } catch (e) {
    setConn('offline');
    return;
  }
  if (POLL_ONLY) setConn('polling');
}

function follow() {
  if (!window.EventSource) return;
  const es = new EventSource('/api/events');
  es.onopen = () => setConn('live');
  es.onmessage = (e) => {
    try { render(JSON.parse(e.data)); setConn('live'); } catch (err) { /* a torn event: the next one comes */ }
  };
  es.onerror = () => setConn('reconnecting'); // EventSource retries by itself
}

// ---- actions and purges ----
async function send(url, body) {
  const token = getToken();
  if (!token) {
    toast('Set the admin token first (the #token= link `meridian cluster up` prints).', true);
    $('#token').focus();
    return null;
  }
  const init = { method: 'POST', headers: { Authorization: 'Bearer ' + token } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  try {
    const r = await fetch(url, init);
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) {
      toast(r.status + ': ' + (answer.error || r.statusText), true);
      if (r.status === 401) $('#token').focus();
      return null;
    }
    return answer;
  } catch (e) {
    toast('The dashboard did not answer: ' + e.message, true);
    return null;
  }
}

async function act(node, action) {
  const answer = await send('/api/nodes/' + encodeURIComponent(node) + '/' + encodeURIComponent(action));
  if (answer) {
    toast(node + ': ' + action + ' → ' + answer.fault.state);
    poll();
  }
}

async function purge(ev) {
  ev.preventDefault();
  const kind = $('#purge-kind').value;
  const body = {};
  if (kind === 'all') {
    body.all = true;
  } else {
    const items = $('#purge-value').value.split(/[\s,]+/).filter((x) => x);
    if (!items.length) { toast('Name something to purge.', true); return; }
    body[kind] = items;
  }
  if ($('#purge-soft').checked) body.soft = true;
  const report = $('#purge-report');
  report.replaceChildren(el('p', { class: 'muted' }, 'purging…'));
  const answer = await send('/api/purge', body);
  if (!answer) { report.replaceChildren(); return; }
  const table = el('table', { class: 'report', 'data-seq': answer.seq });
  const head = el('tr');
  for (const h of ['node', 'tier', 'result', 'entries', 'ms']) head.append(el('th', {}, h));
  table.append(head);
  for (const n of answer.nodes || []) {
    const row = el('tr', { 'data-node': n.node, 'data-result': n.result });
    row.append(el('td', {}, n.node), el('td', {}, n.tier), el('td', { class: n.result }, n.result), el('td', {}, fmtInt(n.entries)), el('td', {}, n.ms.toFixed(1)));
    if (n.error) row.title = n.error;
    table.append(row);
  }
  const caption = el('p', {}, 'purge #' + answer.seq + ' reached ' + (answer.nodes || []).filter((n) => n.result === 'applied').length + ' of ' + (answer.nodes || []).length + ' nodes in ' + answer.ms.toFixed(0) + ' ms');
  report.replaceChildren(caption, table);
  poll();
}

// ---- start ----
tokenFromFragment();
setToken(getToken());
drawGraticule();
$('#token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken($('#token').value.trim());
  $('#token').value = '';
  toast(getToken() ? 'Token set for this tab.' : 'Token cleared.');
});
$('#purge-form').addEventListener('submit', purge);
const PURGE_HINTS = {
  urls: 'absolute URLs: scheme://host/path, comma-separated',
  prefixes: 'host/path prefixes: site.example/img/, comma-separated',
  tags: 'surrogate keys: news, sports',
  all: 'everything',
};
function purgeKindChanged() {
  const kind = $('#purge-kind').value;
  $('#purge-value').disabled = kind === 'all';
  $('#purge-value').placeholder = PURGE_HINTS[kind];
}
$('#purge-kind').addEventListener('change', purgeKindChanged);
purgeKindChanged();
poll();
if (POLL_ONLY) setConn('polling'); else follow();
setInterval(() => {
  if (POLL_ONLY || Date.now() - lastAt > STALE_MS) {
    if ($('#conn').dataset.conn !== 'live') setConn('polling');
    poll();
  }
}, 1000);
