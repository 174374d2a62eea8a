// The status page an administrator keeps open: GET / (HTML), /app.css, /app.js. Plain HTML and a
// small script, served from these strings (no build step, nothing to copy to dist/). The page
// holds no data itself: its script reads the JSON API every 5 s and builds the tables with
// textContent (never innerHTML), so no value is ever interpreted as markup.
//
// Identifiers: the quarantine's original identifiers are fetched only when the user asks for
// them and has entered the access token (kept in this tab's sessionStorage); they are shown in a
// section marked as key material and dropped again on "Hide".
import type { FastifyInstance } from 'fastify';
import type { RouteContext } from '../server.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dicom-deid node</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>dicom-deid <span id="aet"></span></h1>
  <span id="state" class="badge">…</span>
  <span id="uptime"></span>
  <span id="updated"></span>
  <form id="token-form">
    <input id="token" type="password" placeholder="access token" autocomplete="off" aria-label="access token">
    <button type="submit">Use token</button>
    <span id="token-state"></span>
  </form>
</header>
<p id="error" class="error" hidden></p>
<main>
  <section id="node">
    <h2>Node</h2>
    <table><thead><tr><th>component</th><th>state</th><th>since</th><th>backlog</th><th>last error</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="throughput">
    <h2>Throughput</h2>
    <dl>
      <dt>received</dt><dd id="t-received"></dd>
      <dt>filed</dt><dd id="t-filed"></dd>
      <dt>quarantined</dt><dd id="t-quarantined"></dd>
      <dt>failed attempts</dt><dd id="t-failed"></dd>
      <dt>associations open</dt><dd id="t-assoc"></dd>
      <dt>acknowledgement p95</dt><dd id="t-ack"></dd>
    </dl>
  </section>
  <section id="destinations">
    <h2>Destinations and forward queue</h2>
    <table><thead><tr><th>destination</th><th>address</th><th>health</th><th>pending</th><th>delivered</th><th>dead</th><th>dead because</th><th></th></tr></thead><tbody></tbody></table>
    <p class="note" id="echo-result"></p>
  </section>
  <section id="studies">
    <h2>Recent studies</h2>
    <table><thead><tr><th>research ID</th><th>accession</th><th>study date (shifted)</th><th>modality</th><th>instances</th><th>forwarded</th><th>last filed</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="quarantine">
    <h2>Quarantine <button type="button" id="show-identifiers">Show identifiers</button></h2>
    <p class="keymaterial" id="keymaterial" hidden>KEY MATERIAL: original identifiers are shown below. Do not copy them anywhere but the mapping CSV.</p>
    <table><thead><tr><th>study</th><th>reason</th><th>instances</th><th>received</th><th class="ident">identifiers / CSV row to add</th><th></th></tr></thead><tbody></tbody></table>
    <p class="note" id="quarantine-result"></p>
  </section>
  <section id="disk">
    <h2>Disk and spool</h2>
    <table><thead><tr><th>folder</th><th>free</th><th>size</th><th></th></tr></thead><tbody></tbody></table>
    <p id="spool-line"></p>
    <p id="retrieve-line"></p>
  </section>
  <section id="errors">
    <h2>Last errors</h2>
    <ul></ul>
  </section>
</main>
</body>
</html>
`;

const CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1f24; background: #f4f6f8; }
header { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; padding: .6em 1em; background: #1f3a5f; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
header form { margin-left: auto; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1em; padding: 1em; }
section { background: #fff; border-radius: 6px; padding: .6em 1em; box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 0; overflow-x: auto; }
#destinations, #studies, #quarantine { grid-column: 1 / -1; }
td { overflow-wrap: break-word; }
h2 { font-size: 1em; margin: .2em 0 .6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2em .5em; border-bottom: 1px solid #e3e7eb; vertical-align: top; }
th { font-weight: 600; color: #52606d; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; }
dt { color: #52606d; }
.badge { padding: .1em .6em; border-radius: 1em; background: #888; font-weight: 600; }
.s-running, .s-up { color: #0a7d32; } .s-degraded, .s-starting, .s-stopping, .s-unknown { color: #a35f00; }
.s-failed, .s-down, .s-stopped, .s-not-configured { color: #b3261e; }
.badge.s-running { background: #0a7d32; color: #fff; } .badge.s-degraded, .badge.s-starting { background: #a35f00; color: #fff; }
.badge.s-failed, .badge.s-stopped, .badge.s-stopping { background: #b3261e; color: #fff; }
.error { background: #fde7e9; color: #b3261e; margin: 1em; padding: .5em 1em; border-radius: 4px; }
.keymaterial { background: #fff4ce; border: 1px solid #c19c00; padding: .4em .8em; font-weight: 600; }
.ident { font-family: ui-monospace, monospace; }
.note { color: #52606d; }
button { cursor: pointer; }
`;

const JS = `'use strict';
(function () {
  var REFRESH_MS = 5000;
  var showIdentifiers = false;
  var last = null;
  function $(sel) { return document.querySelector(sel); }
  function token() { return sessionStorage.getItem('dicom-deid-token') || ''; }
  function headers(json) {
    var h = {};
    if (json) h['Content-Type'] = 'application/json';
    if (token()) h['Authorization'] = 'Bearer ' + token();
    return h;
  }
  function api(path, body) {
    var init = body === undefined ? { headers: headers(false) } : { method: 'POST', headers: headers(true), body: JSON.stringify(body) };
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error((data && data.error) || ('HTTP ' + r.status));
        return data;
      });
    });
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) {
      var td = document.createElement('td');
      if (c instanceof Node) td.appendChild(c); else if (c !== undefined && c !== null) td.textContent = String(c);
      tr.appendChild(td);
    });
    return tr;
  }
  function fill(sel, rows, empty) {
    var body = $(sel + ' tbody');
    body.replaceChildren.apply(body, rows.length ? rows : [row([empty || 'none'])]);
  }
  function button(text, cls, onClick) {
    var b = el('button', text, cls);
    b.type = 'button';
    b.addEventListener('click', function () { b.disabled = true; onClick().finally(function () { b.disabled = false; }); });
    return b;
  }
  function span(text, state) { return el('span', text, 's-' + state); }
  function time(iso) { return iso ? new Date(iso).toLocaleString() : ''; }
  function bytes(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + ' ' + u[i];
  }
  function duration(s) {
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' days';
  }
  function showError(e) {
    var p = $('#error');
    if (e) { p.textContent = String(e.message || e); p.hidden = false; } else { p.hidden = true; }
  }
  function note(sel, text) { $(sel).textContent = text; }
  function rate(now, prev, key, comp) {
    if (!prev) return '';
    var a = now.components[comp], b = prev.components[comp];
    if (!a || !b) return '';
    var dt = (Date.parse(now.at) - Date.parse(prev.at)) / 60000;
    if (dt <= 0) return '';
    return ' (' + Math.round(((a.counts[key] || 0) - (b.counts[key] || 0)) / dt) + ' per min)';
  }

  function renderStatus(s) {
    $('#aet').textContent = s.aeTitle;
    var badge = $('#state');
    badge.textContent = s.state;
    badge.className = 'badge s-' + s.state;
    $('#uptime').textContent = 'up ' + duration(s.uptimeSeconds) + ' · v' + s.version;
    var comps = Object.keys(s.components).map(function (k) { return s.components[k]; }).filter(Boolean);
    fill('#node', comps.map(function (c) {
      return row([c.name, span(c.state, c.state), time(c.since), c.backlog === undefined ? '' : c.backlog,
        c.lastError ? c.lastError.message + (c.lastError.count > 1 ? ' (x' + c.lastError.count + ')' : '') : '']);
    }));
    var r = s.components.receiver || { counts: {} }, p = s.components.processing || { counts: {} };
    $('#t-received').textContent = (r.counts.instancesStored || 0) + ' instances, ' + bytes(r.counts.bytesReceived || 0) + rate(s, last, 'instancesStored', 'receiver');
    // Totals from the state and the quarantine: replays (here, by the API or the command) count.
    var t = s.totals || { filed: p.counts.filed || 0, quarantined: p.counts.quarantined || 0 };
    $('#t-filed').textContent = t.filed + rate(s, last, 'filed', 'processing');
    $('#t-quarantined').textContent = t.quarantined + ' held now';
    $('#t-failed').textContent = String((p.counts.failed || 0) + (r.counts.instancesFailed || 0));
    $('#t-assoc').textContent = (r.counts.associationsOpen || 0) + ' (accepted ' + (r.counts.associationsAccepted || 0) + ', rejected ' + (r.counts.associationsRejected || 0) + ')';
    $('#t-ack').textContent = (r.counts.ackLatencyMsP95 || 0) + ' ms';
    fill('#disk', s.disks.map(function (d) {
      var low = d.freeBytes < d.minFreeBytes;
      return row([d.name, span(bytes(d.freeBytes), low || d.problem ? 'down' : 'up'), bytes(d.totalBytes), d.problem || (low ? 'below ' + bytes(d.minFreeBytes) : '')]);
    }));
    var sp = s.components.spool;
    $('#spool-line').textContent = sp ? 'spool backlog: ' + (sp.backlog || 0) + ' instance(s); journal ' + (sp.counts.segments || 0) + ' segment(s), reserve ' + bytes(sp.counts.reserveBytes || 0) : '';
    // Retrieve jobs the node runs (dicom-deid retrieve hands them over): counts only.
    var rt = s.components.retrieve, jobs = (rt && rt.details && rt.details.jobs) || [];
    $('#retrieve-line').textContent = jobs.map(function (j) {
      return 'retrieve job ' + j.jobId + ': ' + j.phase + ', rows queried ' + j.rowsQueried + '/' + j.rowsTotal +
        ', studies ' + j.studiesDone + '/' + j.studiesTotal + (j.moving ? ', moving ' + j.moving : '') +
        ', instances ' + j.instancesFiled + '/' + j.instancesExpected + (j.waitingFor ? ', waiting for ' + j.waitingFor : '');
    }).join('; ');
    var errs = [];
    // The forwarder's last error is its destinations' (listed below with their names).
    comps.forEach(function (c) { if (c.lastError && c.name !== 'forwarder') errs.push({ at: c.lastError.at, text: c.name + ': ' + c.lastError.message + (c.lastError.count > 1 ? ' (x' + c.lastError.count + ')' : '') }); });
    var f = s.components.forwarder;
    ((f && f.details && f.details.destinations) || []).forEach(function (d) {
      if (d.lastError) errs.push({ at: d.lastError.at, text: d.name + ': ' + d.lastError.message });
    });
    errs.sort(function (a, b) { return a.at < b.at ? 1 : -1; });
    var ul = $('#errors ul');
    ul.replaceChildren.apply(ul, errs.length ? errs.slice(0, 10).map(function (e) { return el('li', time(e.at) + ' · ' + e.text); }) : [el('li', 'none')]);
    last = s;
  }

  function renderQueue(q) {
    fill('#destinations', q.destinations.map(function (d) {
      var actions = el('span');
      if (d.configured) {
        actions.appendChild(button('Echo', 'echo', function () {
          return api('/api/destinations/' + encodeURIComponent(d.destination) + '/echo', {}).then(function (r) {
            note('#echo-result', d.destination + ': C-ECHO ' + (r.ok ? 'succeeded in ' + r.ms + ' ms' : 'failed: ' + (r.error || ('status 0x' + (r.status || 0).toString(16)))));
          }).catch(showError);
        }));
      }
      if (d.dead > 0) {
        actions.appendChild(button('Retry dead', 'retry', function () {
          return api('/api/queue/retry', { destination: d.destination }).then(function (r) {
            note('#echo-result', r.retried + ' dead item(s) of ' + d.destination + ' are pending again');
          }).then(refresh).catch(showError);
        }));
      }
      if (!d.configured) {
        actions.appendChild(button('Drop', 'drop', function () {
          if (!confirm('Delete every queue item of the removed destination ' + d.destination + '?')) return Promise.resolve();
          return api('/api/queue/drop', { destination: d.destination }).then(refresh).catch(showError);
        }));
      }
      var reasons = d.deadReasons.map(function (x) { return x.count + ' x ' + x.reason; }).join('; ');
      return row([d.destination, d.address || '(removed from the config)', span(d.health, d.health), d.pending + d.inFlight, d.delivered, d.dead, reasons, actions]);
    }), 'no destination configured');
  }

  function renderStudies(list) {
    fill('#studies', list.studies.map(function (s) {
      var fw = Object.keys(s.forward).map(function (dest) {
        var st = s.forward[dest];
        return dest + ': ' + Object.keys(st).map(function (k) { return st[k] + ' ' + k; }).join(', ');
      }).join('; ');
      return row([s.researchId, s.accession, s.studyDate, s.modalities.join(', '), s.instances, fw || '-', time(s.lastFiledAt)]);
    }), 'no study filed yet');
  }

  function renderQuarantine(q) {
    $('#keymaterial').hidden = !q.identifiers;
    $('#show-identifiers').textContent = showIdentifiers ? 'Hide identifiers' : 'Show identifiers';
    fill('#quarantine', q.groups.map(function (g) {
      var actions = el('span');
      if (g.replayable) {
        actions.appendChild(button('Replay', 'replay', function () {
          return api('/api/quarantine/replay', { study: g.study, reason: g.reason }).then(function (r) {
            note('#quarantine-result', 'replay: ' + r.filed + ' of ' + r.selected + ' filed' + (r.stillUnmatched ? ', ' + r.stillUnmatched + ' still without a mapping row' : ''));
          }).then(refresh).catch(showError);
        }));
      }
      actions.appendChild(button('Delete', 'delete', function () {
        if (!confirm('Delete these ' + g.count + ' quarantined instance(s) for good?')) return Promise.resolve();
        return api('/api/quarantine/delete', { study: g.study, reason: g.reason }).then(function (r) {
          note('#quarantine-result', r.deleted + ' instance(s) deleted');
        }).then(refresh).catch(showError);
      }));
      var ident = '';
      if (g.identifiers) {
        ident = el('span', 'PatientID ' + g.identifiers.patientId + ' · Accession ' + g.identifiers.accessionNumber + ' · StudyDate ' + g.identifiers.studyDate + ' · add: ' + g.identifiers.csvRow, 'ident');
      }
      return row([g.study, g.reason, g.count, time(g.firstReceivedAt) + (g.count > 1 ? ' – ' + time(g.lastReceivedAt) : ''), ident, actions]);
    }), 'quarantine is empty');
  }

  function refresh() {
    return Promise.all([
      api('/api/status').then(renderStatus),
      api('/api/queue').then(renderQueue),
      api('/api/studies?limit=20').then(renderStudies),
      api('/api/quarantine' + (showIdentifiers ? '?identifiers=1' : '')).then(renderQuarantine),
    ]).then(function () {
      showError(null);
      $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    }).catch(showError);
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('#token-state').textContent = token() ? 'token set' : '';
    $('#token-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var t = $('#token').value.trim();
      if (t) sessionStorage.setItem('dicom-deid-token', t); else sessionStorage.removeItem('dicom-deid-token');
      $('#token').value = '';
      $('#token-state').textContent = t ? 'token set' : '';
      refresh();
    });
    $('#show-identifiers').addEventListener('click', function () {
      showIdentifiers = !showIdentifiers;
      refresh();
    });
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();
`;

/**
 * Registers GET / (the page, with its Content-Security-Policy), /app.css and /app.js on the fastify instance;
 * open to anyone (they hold no data).
 */
export function pageRoutes(app: FastifyInstance, _ctx: RouteContext): void {
  // The page holds no data (its script reads the API, which checks access): served to anyone.
  app.get('/', async (_req, reply) =>
    reply.header('content-security-policy', CSP).type('text/html; charset=utf-8').send(HTML),
  );
  app.get('/app.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(CSS));
  app.get('/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(JS));
}
