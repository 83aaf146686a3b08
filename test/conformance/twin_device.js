'use strict';
// An SDK device (or module) using its twin: azure-iot-device +
// azure-iot-device-mqtt, used as an application would. It opens the client,
// prints {"event":"ready"}, then runs commands read from stdin, one JSON
// object per line, one at a time in order:
//   {"id":"c1","op":"getTwin"}                 client.getTwin()
//   {"id":"c2","op":"report","patch":{...}}    twin.properties.reported.update(patch, cb)
//   {"id":"c3","op":"listen"}                  twin.on('properties.desired', ...); done when the
//                                              SDK's desired subscription call has succeeded
// and prints one result line per command:
//   {"event":"result","id":..,"op":..,"ok":true, ...}
//     getTwin: "desired", "reported" (the SDK's twin.properties, JSON.stringify'd) and
//              "raw" (the GET response body as the transport parsed it, before the SDK
//              picked desired and reported out of it)
//   {"event":"result","id":..,"op":..,"ok":false,"error":"<constructor name>","message":..}
// Other lines:
//   {"event":"desired","patch":{...},"fromHub":bool}  a properties.desired event; fromHub is
//                                   true when it was fired by a desired-properties PATCH from
//                                   the hub, false when by a GET or by adding the listener
//   {"event":"connect"}             the client (re)connected (transport 'connected')
//   {"event":"subscribe","topic":..}  the SDK sends a SUBSCRIBE for topic
//   {"event":"dropped","message":..}  the connection was lost (transport 'disconnect')
//   {"event":"disconnect"} / {"event":"error","where":..,"message":..}
// Closing stdin closes the client and exits.
//
// Environment: DEVICE_CONNECTION_STRING (required; with ModuleId= it is a
// ModuleClient), DEVICE_CA_FILE (optional, its PEM is passed to setOptions({ca})).
const fs = require('fs');
const readline = require('readline');
const { Client, ModuleClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let lastGetBody; // the last twin GET body the transport returned
let desiredFromHub = false; // set while the transport emits a desired PATCH from the hub
const desiredEnabledWaiters = [];

// A transport that reports what the SDK does, without changing it.
class ObservedMqtt extends Mqtt {
  constructor(authenticationProvider, mqttBase) {
    super(authenticationProvider, mqttBase);
    const base = this._mqtt; // the MqttBase the SDK's twin client subscribes through
    const subscribe = base.subscribe.bind(base);
    base.subscribe = (topic, options, callback) => {
      print({ event: 'subscribe', topic });
      return subscribe(topic, options, callback);
    };
    this.on('connected', () => print({ event: 'connect' }));
    this.on('disconnect', (err) => print({ event: 'dropped', message: String((err && err.message) || '') }));
  }
  getTwin(callback) {
    super.getTwin((err, body) => {
      if (!err) lastGetBody = body;
      callback(err, body);
    });
  }
  enableTwinDesiredPropertiesUpdates(callback) {
    super.enableTwinDesiredPropertiesUpdates((err) => {
      for (const w of desiredEnabledWaiters.splice(0)) w(err);
      callback(err);
    });
  }
  // The SDK's Twin handles this event synchronously, firing properties.desired.
  emit(name, ...args) {
    if (name !== 'twinDesiredPropertiesUpdate') return super.emit(name, ...args);
    desiredFromHub = true;
    try {
      return super.emit(name, ...args);
    } finally {
      desiredFromHub = false;
    }
  }
}

let client;
let twin;

function errorResult(err) {
  return { ok: false, error: err && err.constructor && err.constructor.name, message: String(err && err.message) };
}

const ops = {
  async getTwin() {
    const first = !twin;
    twin = await client.getTwin();
    if (first) twin.on('error', (err) => print({ event: 'error', where: 'twin', message: String(err && err.message) }));
    return { desired: twin.properties.desired, reported: twin.properties.reported, raw: lastGetBody };
  },
  async report(cmd) {
    if (!twin) throw new Error('report before getTwin');
    await new Promise((resolve, reject) => twin.properties.reported.update(cmd.patch, (err) => (err ? reject(err) : resolve())));
    return {};
  },
  async listen() {
    if (!twin) throw new Error('listen before getTwin');
    const enabled = new Promise((resolve, reject) => desiredEnabledWaiters.push((err) => (err ? reject(err) : resolve())));
    twin.on('properties.desired', (patch) => print({ event: 'desired', patch, fromHub: desiredFromHub }));
    await enabled;
    return {};
  },
};

async function run(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    print({ event: 'error', where: 'stdin', message: 'not JSON: ' + line });
    return;
  }
  const op = ops[cmd.op];
  try {
    if (!op) throw new Error('unknown op ' + cmd.op);
    const r = await op(cmd);
    print(Object.assign({ event: 'result', id: cmd.id, op: cmd.op, ok: true }, r));
  } catch (err) {
    print(Object.assign({ event: 'result', id: cmd.id, op: cmd.op }, errorResult(err)));
  }
}

async function main() {
  const cs = process.env.DEVICE_CONNECTION_STRING;
  if (!cs) throw new Error('DEVICE_CONNECTION_STRING is not set');
  client = /;ModuleId=/.test(';' + cs) ? ModuleClient.fromConnectionString(cs, ObservedMqtt) : Client.fromConnectionString(cs, ObservedMqtt);
  client.on('error', (err) => print({ event: 'error', where: 'client', message: String(err && err.message) }));
  client.on('disconnect', (d) => print({ event: 'disconnect', message: String((d && d.reason && d.reason.message) || '') }));
  if (process.env.DEVICE_CA_FILE) await client.setOptions({ ca: fs.readFileSync(process.env.DEVICE_CA_FILE, 'utf8') });
  await client.open();
  print({ event: 'ready' });

  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    chain = chain.then(() => run(line));
  });
  const stop = () => client.close().finally(() => process.exit(0));
  rl.on('close', stop); // the test closes stdin to stop us
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  print({ event: 'error', where: 'main', message: String(err && err.message), name: err && err.constructor && err.constructor.name });
  process.exit(1);
});
