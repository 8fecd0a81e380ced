// html_peers.js - the independent side of the HTML tests and bench (Node, test only).
//
//   node html_peers.js corpus DIR        writes the corpus: Foundation for Emails' templates
//                                        made with inky and Foundation's CSS, MJML-compiled
//                                        templates, and tests/corpus/html/*.html
//   node html_peers.js juice DIR OUT     juice's inlined output of every DIR/*.html in OUT
//   node html_peers.js parse FILE...     mailparser's reading of messages, as JSON lines
//   node html_peers.js bench DIR N       juice + html-to-text over DIR/*.html N times (after
//                                        a warm-up): "name seconds cpu-seconds" per file, then
//                                        "total seconds cpu-seconds" (cpu: all threads)
//   node html_peers.js mdbench FILE N    marked + juice on a Markdown file N times (after a
//                                        warm-up)
'use strict';
const fs = require('fs');
const path = require('path');

const MJML = [
  ['mjml-basic', `<mjml><mj-head><mj-attributes><mj-all font-family="Arial" /></mj-attributes>
<mj-style>.note div { color: #555 !important; } a:hover { color: red; }</mj-style></mj-head>
<mj-body background-color="#f4f4f4"><mj-section background-color="#ffffff">
<mj-column><mj-image width="120px" src="https://example.com/logo.png" alt="Logo" />
<mj-text font-size="20px" color="#222">Welcome aboard</mj-text>
<mj-text css-class="note">Thanks for signing up. Your account is ready, and your first
project is waiting for you. You can invite your team, connect your repositories and set
up notifications from the settings page. If you have any questions, reply to this message
and a person from our support team will answer within one business day.</mj-text>
<mj-button background-color="#0a66c2" href="https://example.com/start">Get started</mj-button>
</mj-column></mj-section></mj-body></mjml>`],
  ['mjml-columns', `<mjml><mj-body><mj-section><mj-column width="50%">
<mj-text>Left column with <a href="https://example.com/a">a link</a>.</mj-text></mj-column>
<mj-column width="50%"><mj-text>Right column</mj-text><mj-divider border-color="#ccc" />
</mj-column></mj-section><mj-section><mj-column><mj-table>
<tr style="border-bottom:1px solid #ecedee;"><th>Item</th><th>Price</th></tr>
<tr><td>Widget</td><td>$10</td></tr></mj-table></mj-column></mj-section></mj-body></mjml>`],
  ['mjml-hero', `<mjml><mj-head><mj-preview>Preview text here</mj-preview></mj-head><mj-body>
<mj-hero mode="fixed-height" height="300px" background-width="600px" background-height="300px"
background-url="https://example.com/hero.jpg" background-color="#2a3448" padding="100px 0px">
<mj-text padding="20px" color="#ffffff" font-size="40px" align="center">Big news</mj-text>
</mj-hero><mj-section><mj-column><mj-social font-size="15px" icon-size="30px" mode="horizontal">
<mj-social-element name="github" href="https://github.com/">GitHub</mj-social-element>
</mj-social></mj-column></mj-section></mj-body></mjml>`],
];

function files(dir) {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.html')).sort();
}

async function corpus(dir) {
  const inky = new (require('inky').Inky)();
  const nm = path.dirname(require.resolve('foundation-emails/package.json'));
  const css = fs.readFileSync(path.join(nm, 'dist/foundation-emails.css'), 'utf8');
  for (const f of fs.readdirSync(path.join(nm, 'templates')).filter((x) => x.endsWith('.html'))) {
    const body = inky.releaseTheKraken(fs.readFileSync(path.join(nm, 'templates', f), 'utf8'));
    const html = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" ' +
      '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n' +
      '<html xmlns="http://www.w3.org/1999/xhtml"><head><meta http-equiv="Content-Type" ' +
      'content="text/html; charset=UTF-8"><meta name="viewport" content="width=device-width">' +
      '<title>' + f + '</title><style>' + css + '</style></head><body>' +
      '<table class="body" data-made-with-foundation=""><tr><td class="float-center" ' +
      'align="center" valign="top"><center>' + body + '</center></td></tr></table></body></html>';
    fs.writeFileSync(path.join(dir, 'inky-' + f), html);
  }
  const mjml = require('mjml');
  for (const [name, src] of MJML) {
    const r = await mjml(src, { validationLevel: 'soft' });
    fs.writeFileSync(path.join(dir, name + '.html'), r.html);
  }
  const edge = path.join(__dirname, '..', 'corpus', 'html');
  for (const f of files(edge))
    fs.copyFileSync(path.join(edge, f), path.join(dir, 'edge-' + f));
}

function juiceAll(dir, out) {
  const juice = require('juice').default || require('juice');
  for (const f of files(dir))
    fs.writeFileSync(path.join(out, f), juice(fs.readFileSync(path.join(dir, f), 'utf8')));
}

async function parse(list) {
  const { simpleParser } = require('mailparser');
  for (const f of list) {
    const m = await simpleParser(fs.readFileSync(f));
    console.log(JSON.stringify({
      file: f, subject: m.subject, text: m.text, html: m.html,
      attachments: m.attachments.map((a) => ({ cid: a.cid, type: a.contentType,
        size: a.size, related: a.related })),
    }));
  }
}

function bench(dir, n) {
  const juice = require('juice').default || require('juice');
  const { convert } = require('html-to-text');
  let total = 0;
  // Warm-up (JIT) before any timing: the figures are the steady state, as pigeon's are.
  for (const f of files(dir)) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    for (let i = 0; i < Math.max(2, n / 10); i++) convert(juice(src), { wordwrap: 78 });
  }
  let totalCpu = 0;
  for (const f of files(dir)) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const html = juice(src);
      convert(html, { wordwrap: 78 });
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1e6; // every thread of the process: GC, JIT
    total += s;
    totalCpu += cpu;
    console.log(f + ' ' + s.toFixed(6) + ' ' + cpu.toFixed(6));
  }
  console.log('total ' + total.toFixed(6) + ' ' + totalCpu.toFixed(6));
}

function mdbench(file, n) {
  const { marked } = require('marked');
  const juice = require('juice').default || require('juice');
  const src = fs.readFileSync(file, 'utf8');
  const css = fs.readFileSync(path.join(__dirname, '..', 'corpus', 'markdown.css'), 'utf8');
  const once = () => {
    const body = marked.parse(src, { gfm: true });
    juice('<!DOCTYPE html><html><head><style>' + css + '</style></head><body>' + body +
      '</body></html>');
  };
  for (let i = 0; i < Math.max(2, n / 10); i++) once(); // warm-up (JIT)
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) once();
  const c = process.cpuUsage(c0);
  console.log('total ' + (Number(process.hrtime.bigint() - t0) / 1e9).toFixed(6) + ' ' +
    ((c.user + c.system) / 1e6).toFixed(6));
}

(async () => {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'corpus') await corpus(a);
  else if (mode === 'juice') juiceAll(a, b);
  else if (mode === 'parse') await parse(process.argv.slice(3));
  else if (mode === 'bench') bench(a, Number(b));
  else if (mode === 'mdbench') mdbench(a, Number(b));
  else { console.error('usage: see the header'); process.exit(64); }
})().catch((e) => { console.error(e); process.exit(1); });
