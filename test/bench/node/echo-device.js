'use strict';
// The benchmark's Node SDK device: azure-iot-device + azure-iot-device-mqtt
// used as an application would, with one handler, echo, that replies 200 with
// the request payload. Prints "ready" on stdout once the methods subscription
// is acknowledged; exits on SIGTERM, SIGINT or end of stdin.
// Environment: DEVICE_CONNECTION_STRING (required), DEVICE_CA_FILE (required
// for the local hub). The SDK is resolved through NODE_PATH (the harness sets
// it to test/conformance/node_modules, installed by `npm ci --prefix test/conformance`).
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

let transport;
class Transport extends Mqtt {
  constructor(authenticationProvider, mqttBase) {
    super(authenticationProvider, mqttBase);
    transport = this;
  }
}

async function main() {
  const cs = process.env.DEVICE_CONNECTION_STRING;
  if (!cs) throw new Error('DEVICE_CONNECTION_STRING is not set');
  const client = Client.fromConnectionString(cs, Transport);
  client.on('error', (err) => process.stderr.write('client error: ' + String(err && err.message) + '\n'));
  if (process.env.DEVICE_CA_FILE) await client.setOptions({ ca: process.env.DEVICE_CA_FILE });
  await client.open();
  client.onDeviceMethod('echo', (req, res) => {
    res.send(200, req.payload, (err) => {
      if (err) process.stderr.write('send: ' + String(err.message) + '\n');
    });
  });
  // onDeviceMethod subscribes in the background; this callback fires on the SUBACK.
  await new Promise((resolve, reject) => transport.enableMethods((err) => (err ? reject(err) : resolve())));
  process.stdout.write('ready\n');

  const stop = () => client.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}

main().catch((err) => {
  process.stderr.write('echo-device: ' + String(err && err.message) + '\n');
  process.exit(1);
});
