// webhook_receiver.js - an HTTPS webhook endpoint for bouncerd's tests and
// benchmark.  Every request is verified with the Standard Webhooks
// reference library (npm package "standardwebhooks", found through
// NODE_PATH) and logged as one JSON line: id, type, address, verified,
// the answer given.  What it answers is read from MODE_FILE at each
// request:
//   ok           200 when the signature verifies, else 401
//   500          500 (logged, verified or not)
//   hang         never answers (the request is logged first)
//   redirect     302 to REDIRECT_URL
//   wrongsecret  verifies with another secret: 401, logged verified=false
// usage: node webhook_receiver.js PORT CERT KEY SECRET LOG MODE_FILE
//            [REDIRECT_URL]
'use strict';
const fs = require('fs');
const https = require('https');
const crypto = require('crypto');
const { Webhook } = require('standardwebhooks');

const [port, cert, key, secret, logFile, modeFile, redirectUrl] =
    process.argv.slice(2);
if (!modeFile) {
	console.error('usage: webhook_receiver.js PORT CERT KEY SECRET LOG MODE_FILE [REDIRECT_URL]');
	process.exit(2);
}
const good = new Webhook(secret);
const other = new Webhook('whsec_' + crypto.randomBytes(32).toString('base64'));
const quiet = process.env.RECEIVER_QUIET === '1';	// benchmark: count only
let count = 0;

function mode() {
	try {
		return fs.readFileSync(modeFile, 'utf8').trim() || 'ok';
	} catch (e) {
		return 'ok';
	}
}

// the user of a basic authorization (never its password)
function basicUser(h) {
	if (!h || !h.startsWith('Basic ')) return null;
	const plain = Buffer.from(h.slice(6), 'base64').toString('utf8');
	return plain.split(':')[0];
}

function record(entry) {
	fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
}

const server = https.createServer({
	cert: fs.readFileSync(cert),
	key: fs.readFileSync(key),
	keepAliveTimeout: 60000,
}, (req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const body = Buffer.concat(chunks).toString('utf8');
		const m = mode();
		let verified = false, payload = null, why = null;
		try {
			payload = (m === 'wrongsecret' ? other : good)
			    .verify(body, req.headers);
			verified = true;
		} catch (e) {
			why = String(e.message || e);
			try { payload = JSON.parse(body); } catch (e2) { /* kept null */ }
		}
		let status = verified ? 200 : 401;
		if (m === '500') status = 500;
		if (m === 'redirect') status = 302;
		if (m === 'hang') status = 0;
		count++;
		if (!quiet || !verified) {
			record({
				n: count,
				id: req.headers['webhook-id'] || null,
				ts: req.headers['webhook-timestamp'] || null,
				path: req.url,
				auth: req.headers['authorization'] ? 'present' : 'absent',
				auth_user: basicUser(req.headers['authorization']),
				campaign_uuid: payload && 'campaign_uuid' in payload ? payload.campaign_uuid : null,
				source: payload ? payload.source || null : null,
				type: payload ? payload.type || null : null,
				address: payload && payload.data ? payload.data.address || null : null,
				email: payload ? payload.email || null : null,
				verified: verified,
				why: why,
				mode: m,
				status: status,
			});
		}
		if (m === 'hang') return;	// never answered
		const headers = {'Content-Type': 'text/plain'};
		if (status === 302) headers['Location'] = redirectUrl || 'https://example.invalid/';
		res.writeHead(status, headers);
		res.end(status === 200 ? 'ok\n' : 'no\n');
	});
});
server.listen(Number(port), '127.0.0.1', () => {
	fs.writeFileSync(logFile + '.ready', String(process.pid));
});
process.on('SIGTERM', () => {
	fs.writeFileSync(logFile + '.count', String(count));
	process.exit(0);
});
