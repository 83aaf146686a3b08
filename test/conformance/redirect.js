'use strict';
// Preload (node -r ./redirect.js): the service SDK always dials port 443 of
// its connection string's HostName. This sends those TLS connections to the
// local hub's REST port instead, without touching how the SDK builds its
// requests: host, path, headers and the SAS audience stay as the SDK made
// them, and SNI plus the certificate check stay on the host name.
//
// METHODD_REDIRECT="localhost:443=127.0.0.1:41234[,host:port=ip:port...]"
//
// Each redirected connection, once TLS is up, prints {"event":"connected"} on
// stdout so a test can tell that a request is on its way without sleeping.
const https = require('https');

const routes = new Map();
for (const rule of (process.env.METHODD_REDIRECT || '').split(',').filter(Boolean)) {
  const [from, to] = rule.split('=');
  const i = to.lastIndexOf(':');
  routes.set(from, { host: to.slice(0, i), port: Number(to.slice(i + 1)) });
}

const original = https.Agent.prototype.createConnection;
https.Agent.prototype.createConnection = function createConnection(options, callback) {
  const host = String(options.host || 'localhost').replace(/:\d+$/, '');
  const route = routes.get(`${host}:${options.port || 443}`);
  if (!route) return original.call(this, options, callback);
  const socket = original.call(this, Object.assign({}, options, {
    host: route.host,
    port: route.port,
    servername: host,
  }), callback);
  socket.once('secureConnect', () => process.stdout.write(JSON.stringify({ event: 'connected' }) + '\n'));
  return socket;
};
