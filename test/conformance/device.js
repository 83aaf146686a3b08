'use strict';
// An SDK device: azure-iot-device + azure-iot-device-mqtt, used exactly as an
// application would. Prints one JSON object per line on stdout:
//   {"event":"ready"}                              connected and subscribed to methods
//   {"event":"raw","method":..,"rid":..,"body":..}  the request bytes as the transport got them (utf8)
//   {"event":"method","method":..,"rid":..,"payload":..}  the payload the handler saw, JSON.stringify'd
//   {"event":"replied","method":..,"status":..}      a reply was sent
//   {"event":"token"}                              the SDK minted a new SAS (its renewal timer)
//   {"event":"reconnected"}                        the SDK's DISCONNECT/CONNECT for that new SAS finished
//   {"event":"error","where":..,"message":..}
// Environment: DEVICE_CONNECTION_STRING (required), DEVICE_CA_FILE (optional,
// passed to setOptions({ca})), DEVICE_TOKEN_RENEWAL="valid:margin" seconds
// (optional, the SDK's tokenRenewal option).
// X.509 mode: DEVICE_CERT_FILE and DEVICE_KEY_FILE (PEM files, read here and
// passed as setOptions({cert, key}), as the SDK's X.509 samples do) with a
// connection string `HostName=..;DeviceId=..;x509=true`. The SDK then dials
// mqtts://HostName:8883 whatever GatewayHostName says: run with
// `-r ./mqtt_redirect.js` to reach a local hub.
//
// Methods: echo (200, the request payload), fail500 (500, {"error":"boom"}),
// slow (waits payload.seconds, or forever if absent, then 200 with the request
// payload), counts (200,
// {"calls":N} — calls received so far by this process).
const fs = require('fs');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// A transport that reports what the SDK does, without changing it.
class ObservedMqtt extends Mqtt {
  constructor(authenticationProvider, mqttBase) {
    super(authenticationProvider, mqttBase);
    // (An X.509 provider is no EventEmitter: it has no tokens.)
    if (typeof authenticationProvider.on === 'function') authenticationProvider.on('newTokenAvailable', () => emit({ event: 'token' }));
    // MqttBase's state machine: reconnecting -> connected is the SAS-renewal reconnect.
    this._mqtt._fsm.on('transition', (t) => {
      if (t.fromState === 'reconnecting' && t.toState === 'connected') emit({ event: 'reconnected' });
    });
  }
  onDeviceMethod(methodName, callback) {
    super.onDeviceMethod(methodName, (message) => {
      emit({
        event: 'raw',
        method: message.methods && message.methods.methodName,
        rid: message.requestId,
        body: message.body === undefined || message.body === null ? null : message.body.toString('utf8'),
      });
      callback(message);
    });
  }
}

let transport;
class RecordingMqtt extends ObservedMqtt {
  constructor(authenticationProvider, mqttBase) {
    super(authenticationProvider, mqttBase);
    transport = this;
  }
}

let calls = 0;
function reply(response, method, status, payload) {
  response.send(status, payload, (err) => {
    if (err) emit({ event: 'error', where: 'send ' + method, message: String(err && err.message) });
    else emit({ event: 'replied', method, status });
  });
}

const handlers = {
  echo: (req, res) => reply(res, 'echo', 200, req.payload),
  fail500: (req, res) => reply(res, 'fail500', 500, { error: 'boom' }),
  slow: (req, res) => {
    const s = req.payload && req.payload.seconds;
    if (typeof s === 'number') setTimeout(() => reply(res, 'slow', 200, req.payload), s * 1000);
  },
  counts: (req, res) => reply(res, 'counts', 200, { calls }),
};

async function main() {
  const cs = process.env.DEVICE_CONNECTION_STRING;
  if (!cs) throw new Error('DEVICE_CONNECTION_STRING is not set');
  const client = Client.fromConnectionString(cs, RecordingMqtt);
  client.on('error', (err) => emit({ event: 'error', where: 'client', message: String(err && err.message) }));
  client.on('disconnect', (d) => emit({ event: 'disconnect', message: String(d && d.reason && d.reason.message || '') }));

  const options = {};
  if (process.env.DEVICE_CA_FILE) options.ca = process.env.DEVICE_CA_FILE;
  if (process.env.DEVICE_CERT_FILE) {
    options.cert = fs.readFileSync(process.env.DEVICE_CERT_FILE, 'utf8');
    options.key = fs.readFileSync(process.env.DEVICE_KEY_FILE, 'utf8');
  }
  if (process.env.DEVICE_TOKEN_RENEWAL) {
    const [valid, margin] = process.env.DEVICE_TOKEN_RENEWAL.split(':').map(Number);
    options.tokenRenewal = { tokenValidTimeInSeconds: valid, tokenRenewalMarginInSeconds: margin };
  }
  if (Object.keys(options).length > 0) await client.setOptions(options);

  await client.open();
  for (const [name, handler] of Object.entries(handlers)) {
    client.onDeviceMethod(name, (req, res) => {
      calls++;
      emit({ event: 'method', method: name, rid: req.requestId, payload: req.payload === undefined ? null : JSON.stringify(req.payload) });
      handler(req, res);
    });
  }
  // The handlers above subscribe in the background; this callback fires on the SUBACK.
  await new Promise((resolve, reject) => transport.enableMethods((err) => (err ? reject(err) : resolve())));
  emit({ event: 'ready' });

  const stop = () => client.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop); // the test closes stdin to stop us
  process.stdin.resume();
}

main().catch((err) => {
  emit({ event: 'error', where: 'main', message: String(err && err.message), name: err && err.constructor && err.constructor.name });
  process.exit(1);
});
