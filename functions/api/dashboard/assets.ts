/**
 * The dashboard's only stylesheet and script, served from /dashboard/assets so the
 * Content-Security-Policy can forbid inline code. Pages work without the script; it adds
 * the live release view, live domain status, copy buttons and confirmations.
 */
export const css = `
:root { --fg:#1b1f24; --muted:#4a5560; --line:#d0d7de; --bg:#fff; --soft:#f6f8fa; --link:#0a58ca;
  --ok:#116329; --ok-bg:#dafbe1; --bad:#a40e26; --bad-bg:#ffebe9; --run:#6a4a00; --run-bg:#fff3c4; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--link); }
:focus-visible { outline:3px solid #0a58ca; outline-offset:2px; }
header.top { display:flex; flex-wrap:wrap; gap:1rem; align-items:center; padding:.6rem 1.2rem; background:#24292f; color:#fff; }
header.top a { color:#fff; text-decoration:none; font-weight:600; }
header.top nav a { font-weight:400; margin-right:.9rem; }
header.top nav a[aria-current=page] { text-decoration:underline; }
header.top .right { margin-left:auto; display:flex; gap:.6rem; align-items:center; }
header.top select, header.top button { font:inherit; }
main { max-width:72rem; margin:0 auto; padding:1.2rem; }
h1 { font-size:1.5rem; margin:.2rem 0 1rem; } h2 { font-size:1.15rem; margin:1.6rem 0 .6rem; }
table { border-collapse:collapse; width:100%; margin:.4rem 0 1rem; }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--soft); font-weight:600; }
code, pre, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.88rem; }
pre.log { background:#0d1117; color:#e6edf3; padding:.8rem; border-radius:6px; max-height:28rem; overflow:auto; white-space:pre-wrap; word-break:break-word; }
pre.log .stderr { color:#ffa198; } pre.log .stdout { color:#c9d1d9; }
form.card, section.card, div.card { border:1px solid var(--line); border-radius:6px; padding:1rem; margin:.8rem 0; background:var(--bg); }
form.inline { display:inline; }
label.inline { display:flex; gap:.4rem; align-items:center; font-weight:400; } label.inline input { min-width:0; }
details { margin:.6rem 0; } summary { cursor:pointer; font-weight:600; }
label { display:block; font-weight:600; margin:.5rem 0 .2rem; }
.hint { color:var(--muted); font-size:.88rem; font-weight:400; }
input, select, textarea { font:inherit; padding:.4rem .5rem; border:1px solid #8c959f; border-radius:4px; min-width:16rem; max-width:100%; }
textarea { width:100%; min-height:4rem; }
button, .button { font:inherit; padding:.4rem .9rem; border-radius:4px; border:1px solid #1f6feb; background:#1f6feb; color:#fff; cursor:pointer; text-decoration:none; display:inline-block; }
button.secondary, .button.secondary { background:#fff; color:#1f2328; border-color:#8c959f; }
button.danger { background:var(--bad); border-color:var(--bad); }
.row { display:flex; flex-wrap:wrap; gap:1rem; align-items:flex-end; }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:1rem; font-size:.82rem; font-weight:600; border:1px solid currentColor; }
.badge.ok { color:var(--ok); background:var(--ok-bg); } .badge.bad { color:var(--bad); background:var(--bad-bg); }
.badge.run { color:var(--run); background:var(--run-bg); } .badge.idle { color:var(--muted); background:var(--soft); }
tr.failed td { background:var(--bad-bg); }
.alert { padding:.7rem 1rem; border-radius:6px; margin:.8rem 0; border:1px solid; }
.alert.error { color:var(--bad); background:var(--bad-bg); } .alert.notice { color:var(--ok); background:var(--ok-bg); }
.card > h2:first-child, .card > h2:first-of-type { margin-top:0; }
.empty { margin:.8rem 0; padding:1rem; border:1px dashed var(--line); border-radius:6px; background:var(--soft); }
.auth { max-width:26rem; margin:3rem auto; }
.secret-once { font-size:1rem; padding:.6rem; background:var(--soft); border:1px solid var(--line); word-break:break-all; }
.skip { position:absolute; left:-999px; top:0; background:#fff; color:var(--link); padding:.4rem .8rem; z-index:10; }
.skip:focus { left:.5rem; }
.visually-hidden { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.3rem 1rem; } dl.facts dt { font-weight:600; } dl.facts dd { margin:0; }
ol.progress { list-style:none; display:flex; gap:.4rem; padding:0; flex-wrap:wrap; } ol.progress li { padding:.2rem .6rem; border-radius:1rem; border:1px solid var(--line); }
.charts { display:flex; flex-wrap:wrap; gap:1rem; } figure.chart { margin:0; } figure.chart figcaption { font-weight:600; font-size:.9rem; } .legend { font-size:.8rem; margin-right:.6rem; }
ol.progress li.done { background:var(--ok-bg); color:var(--ok); } ol.progress li.current { background:var(--run-bg); color:var(--run); font-weight:600; }
`;

export const js = `
'use strict';
(function () {
  var announce = document.getElementById('announce');
  function say(text) { if (announce) { announce.textContent = ''; setTimeout(function () { announce.textContent = text; }, 30); } }

  document.addEventListener('click', function (e) {
    var b = e.target.closest && e.target.closest('[data-copy]');
    if (!b) return;
    var text = b.getAttribute('data-copy');
    var done = function () { b.textContent = 'Copied'; say('Copied to the clipboard'); setTimeout(function () { b.textContent = 'Copy'; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () { say('Copy failed: select the value and copy it'); });
    else { var t = document.createElement('textarea'); t.value = text; document.body.appendChild(t); t.select(); try { document.execCommand('copy'); done(); } catch (x) { say('Copy failed'); } t.remove(); }
  });

  document.addEventListener('submit', function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // A backup object goes up as the request body itself (the browser streams the file):
  // straight to the object store where it hands out an upload URL (the cloud, whose API
  // cannot carry it), else through this dashboard to the API.
  document.addEventListener('submit', function (e) {
    var f = e.target;
    if (!f.hasAttribute || !f.hasAttribute('data-stream-upload') || e.defaultPrevented) return;
    e.preventDefault();
    var file = f.querySelector('input[type=file]').files[0];
    if (!file) return;
    var button = f.querySelector('button'); button.disabled = true; say('Uploading');
    var answer = function (r) { return r.json().then(function (b) { if (!r.ok) { var x = new Error((b.error && b.error.message) || r.status); x.code = b.error && b.error.code; throw x; } return b; }); };
    var post = function (url, body) { return fetch(url, { method: 'POST', body: body, credentials: 'same-origin', headers: { 'content-type': 'application/octet-stream' } }).then(answer); };
    post(f.action + '/upload-url')
      .then(function (up) {
        return fetch(up.url, { method: 'PUT', body: file, headers: { 'content-type': up.headers['content-type'] } })
          .then(function (r) { if (!r.ok) throw new Error('the object store answered ' + r.status); return post(f.action + '/complete'); });
      }, function (x) { if (x.code !== 'no_direct_upload') throw x; return post(f.action, file); })
      .then(function () { location.reload(); }, function (x) { button.disabled = false; say('Upload failed: ' + x.message); alert('Upload failed: ' + x.message); });
  });

  // A backup's dump: where the store serves it (the cloud, whose API answers 6 MB at most),
  // it comes from there and is checked (SHA-256), decrypted (AES-256-GCM: IV first, tag
  // last) and gunzipped here; else the link's own streamed download through the API.
  document.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('a[data-direct-download]');
    if (!a || !window.crypto || !crypto.subtle || typeof DecompressionStream === 'undefined') return;
    e.preventDefault();
    say('Downloading');
    fetch(a.getAttribute('href') + '-url', { method: 'POST', credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) { return r.json().then(function (b) { if (!r.ok) { var x = new Error((b.error && b.error.message) || r.status); x.code = b.error && b.error.code; throw x; } return b; }); })
      .then(function (d) {
        return fetch(d.url).then(function (r) { if (!r.ok) throw new Error('the object store answered ' + r.status); return r.arrayBuffer(); })
          .then(function (stored) {
            return crypto.subtle.digest('SHA-256', stored).then(function (h) {
              var hex = Array.prototype.map.call(new Uint8Array(h), function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
              if (stored.byteLength !== d.storedBytes || hex !== d.sha256) throw new Error('the backup does not match its manifest (SHA-256)');
              var raw = Uint8Array.from(atob(d.dataKey), function (c) { return c.charCodeAt(0); });
              return crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']).then(function (key) {
                return crypto.subtle.decrypt({ name: 'AES-GCM', iv: stored.slice(0, 12) }, key, stored.slice(12));
              });
            });
          })
          .then(function (gzipped) { return new Response(new Blob([gzipped]).stream().pipeThrough(new DecompressionStream('gzip'))).blob(); })
          .then(function (dump) {
            var link = document.createElement('a');
            link.href = URL.createObjectURL(dump); link.download = d.filename; link.hidden = true;
            document.body.appendChild(link); link.click(); link.remove();
            setTimeout(function () { URL.revokeObjectURL(link.href); }, 60000);
            say('Downloaded ' + d.filename);
          });
      }, function (x) { if (x.code !== 'no_direct_download') throw x; location.href = a.getAttribute('href'); })
      .catch(function (x) { say('Download failed: ' + x.message); alert('Download failed: ' + x.message); });
  });

  var orgSelect = document.getElementById('org-switch');
  if (orgSelect) orgSelect.addEventListener('change', function () { orgSelect.form.submit(); });

  function refresh(url, target, then) {
    fetch(url, { headers: { accept: 'text/html' }, credentials: 'same-origin' }).then(function (r) { return r.text(); }).then(function (h) {
      target.innerHTML = h; if (then) then();
    }).catch(function () {});
  }

  var release = document.querySelector('[data-release-live]');
  if (release) {
    var id = release.getAttribute('data-release-id');
    var summary = document.getElementById('summary');
    var log = document.getElementById('log');
    var after = Number(release.getAttribute('data-after') || 0);
    var pending = null;
    var refreshSummary = function () {
      if (pending) return;
      pending = setTimeout(function () { pending = null; refresh('/dashboard/releases/' + id + '/summary', summary); }, 100);
    };
    var es = new EventSource('/dashboard/releases/' + id + '/events?after=' + after);
    es.addEventListener('log', function (m) {
      var l = JSON.parse(m.data);
      var empty = document.getElementById('log-empty'); if (empty) empty.remove();
      var span = document.createElement('span');
      span.className = l.stream; span.textContent = l.line + '\\n';
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
      log.appendChild(span);
      if (atBottom) log.scrollTop = log.scrollHeight;
      refreshSummary();
    });
    es.addEventListener('status', function (m) { refreshSummary(); say('Release is ' + JSON.parse(m.data).status.replace(/_/g, ' ')); });
    es.addEventListener('end', function (m) {
      es.close();
      refresh('/dashboard/releases/' + id + '/summary', summary);
      release.removeAttribute('data-release-live');
      release.setAttribute('data-release-done', JSON.parse(m.data).status);
    });
    es.onerror = function () {
      // The stream ended or dropped: poll the summary until the release is finished. A
      // closed state here means the server refused it (e.g. 429: 20 live streams per user).
      if (es.readyState === 2) say('Live log unavailable (too many streams open?): the summary refreshes instead');
      es.close();
      var timer = setInterval(function () {
        refresh('/dashboard/releases/' + id + '/summary', summary, function () {
          if (summary.querySelector('[data-terminal]')) { clearInterval(timer); location.reload(); }
        });
      }, 2000);
    };
  }

  var appLog = document.getElementById('app-log');
  var follow = document.querySelector('[data-logs-follow]');
  if (appLog && follow) {
    var tail = null;
    follow.addEventListener('click', function () {
      if (tail) { tail.close(); tail = null; follow.setAttribute('aria-pressed', 'false'); follow.textContent = 'Live tail'; say('Live tail stopped'); return; }
      tail = new EventSource(appLog.getAttribute('data-logs-live'));
      follow.setAttribute('aria-pressed', 'true'); follow.textContent = 'Stop live tail'; say('Live tail on');
      tail.addEventListener('log', function (m) {
        var l = JSON.parse(m.data);
        var empty = document.getElementById('app-log-empty'); if (empty) empty.remove();
        var span = document.createElement('span');
        span.className = l.stream; span.textContent = l.time.slice(0, 23) + 'Z ' + l.replica + '@' + l.node + ' ' + l.text + '\\n';
        var atBottom = appLog.scrollTop + appLog.clientHeight >= appLog.scrollHeight - 20;
        appLog.appendChild(span);
        // A long follow keeps the newest 5,000 lines on the page.
        while (appLog.childNodes.length > 5000) appLog.removeChild(appLog.firstChild);
        if (atBottom) appLog.scrollTop = appLog.scrollHeight;
      });
      tail.addEventListener('notice', function (m) { say(JSON.parse(m.data).message); });
      tail.addEventListener('end', function () { if (tail) tail.close(); tail = null; follow.setAttribute('aria-pressed', 'false'); follow.textContent = 'Live tail'; });
      tail.onerror = function () { if (tail && tail.readyState === 2) { tail = null; follow.setAttribute('aria-pressed', 'false'); follow.textContent = 'Live tail'; say('Live tail unavailable'); } };
    });
  }

  var domain = document.querySelector('[data-domain-live]');
  if (domain) {
    var did = domain.getAttribute('data-domain-id');
    var polls = 0;
    var timer = setInterval(function () {
      if (++polls > 600) return clearInterval(timer);
      refresh('/dashboard/domains/' + did + '/status', domain, function () {
        if (domain.querySelector('[data-settled]')) clearInterval(timer);
      });
    }, 3000);
  }
})();
`;
