// dkim_verify.js - mailauth's DKIM verifier (npm, an independent implementation) over
// message files, with the test's keys served by a custom resolver instead of DNS.
// Usage: node dkim_verify.js RECORDS.json MESSAGE...  (RECORDS: {"sel._domainkey.d": "v=DKIM1; ..."})
// Prints one JSON line per message: [{"result": "pass", "algo": "...", "selector": "..."}, ...].
'use strict';
const fs = require('fs');
const { dkimVerify } = require('mailauth/lib/dkim/verify');

const records = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const resolver = async (name, type) => {
    const v = records[name.replace(/\.$/, '')];
    if (type !== 'TXT' || v === undefined) {
        const err = new Error('no record for ' + name);
        err.code = 'ENOTFOUND';
        throw err;
    }
    const parts = [];
    for (let i = 0; i < v.length; i += 255) parts.push(v.slice(i, i + 255));
    return [parts];
};

(async () => {
    for (const file of process.argv.slice(3)) {
        const res = await dkimVerify(fs.readFileSync(file), { resolver });
        const out = res.results.map((r) => ({
            result: r.status.result,
            comment: r.status.comment || '',
            algo: r.algo,
            selector: r.selector,
            canon: r.format,
        }));
        process.stdout.write(JSON.stringify(out) + '\n');
    }
})().catch((e) => {
    process.stderr.write(String(e && e.stack) + '\n');
    process.exit(1);
});
