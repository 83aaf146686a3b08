'use strict';
// Preload (node -r ./mqtt_redirect.js): the device SDK ignores GatewayHostName
// in an X.509 connection string (`x509=true`: its X509AuthenticationProvider
// keeps only HostName and DeviceId), so an X.509 device always dials
// mqtts://HostName, port 8883. This sends those TLS connections to the local
// hub's MQTT port instead, without touching what the SDK sends: the CONNECT
// username keeps HostName, and SNI plus the certificate check stay on the host
// name. Only tls.connect calls for a listed host:port are changed.
//
// METHODD_MQTT_REDIRECT="localhost:8883=127.0.0.1:41234[,host:port=ip:port...]"
const tls = require('tls');

const routes = new Map();
for (const rule of (process.env.METHODD_MQTT_REDIRECT || '').split(',').filter(Boolean)) {
  const [from, to] = rule.split('=');
  const i = to.lastIndexOf(':');
  routes.set(from, { host: to.slice(0, i), port: Number(to.slice(i + 1)) });
}

const original = tls.connect;
tls.connect = function connect(...args) {
  const options = args[0];
  if (options === null || typeof options !== 'object') return original.apply(this, args);
  const host = String(options.host || 'localhost');
  const route = routes.get(`${host}:${options.port || 8883}`);
  if (!route) return original.apply(this, args);
  const redirected = Object.assign({}, options, { host: route.host, port: route.port, servername: options.servername || host });
  return original.call(this, redirected, ...args.slice(1));
};
