'use strict';
// An SDK back end using twins and the identity registry: azure-iothub's
// Registry, used as an application would. Run with
// `node -r ./redirect.js twin_service.js` (see redirect.js). It prints
// {"event":"ready"}, then runs commands read from stdin, one JSON object per
// line, one at a time in order:
//   {"id":"c1","op":"getTwin","device":"d","module":"m"?,"as":"A"?}
//        Registry.getTwin / getModuleTwin; the Twin object is kept under the name "as"
//   {"id":"c2","op":"update","as":"A","patch":{...}}
//        twin.update(patch) on the kept Twin: If-Match is that Twin's etag, which the
//        SDK then replaces with the one in the response
//   {"id":"c3","op":"updateTwin","device":"d","patch":{...},"etag":"*"}
//        Registry.updateTwin(device, patch, etag)
//   {"id":"c4","op":"create","device":"d"}   Registry.create({deviceId})
//   {"id":"c5","op":"delete","device":"d"}   Registry.delete(deviceId)
//   {"id":"c6","op":"list"}                  Registry.list(): "devices" holds the ids
// and prints one result line per command:
//   {"event":"result","id":..,"op":..,"ok":true,"httpStatus":N,"twin":{...}|"device":{...}}
//        twin: JSON.stringify of the SDK's Twin (deviceId, etag, tags, properties, ...);
//        device: of the SDK's Device
//   {"event":"result","id":..,"op":..,"ok":false,"error":"<constructor name>","name":..,
//    "message":..,"httpStatus":N|null,"body":"<raw HTTP body>"|null}
// Closing stdin exits. The connection string comes from
// SERVICE_CONNECTION_STRING; trust the hub's CA with NODE_EXTRA_CA_CERTS.
const readline = require('readline');
const { Registry } = require('azure-iothub');

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let registry;
const twins = {};

function status(res) {
  return res && res.httpResponse ? res.httpResponse.statusCode : null;
}

const ops = {
  async getTwin(cmd) {
    const res = cmd.module ? await registry.getModuleTwin(cmd.device, cmd.module) : await registry.getTwin(cmd.device);
    if (cmd.as) twins[cmd.as] = res.responseBody;
    return { httpStatus: status(res), twin: res.responseBody };
  },
  async update(cmd) {
    const twin = twins[cmd.as];
    if (!twin) throw new Error('no twin kept as ' + cmd.as);
    const res = await twin.update(cmd.patch); // {result: the Twin, message: the HTTP response}
    return { httpStatus: res.message ? res.message.statusCode : null, twin: res.result };
  },
  async updateTwin(cmd) {
    const res = await registry.updateTwin(cmd.device, cmd.patch, cmd.etag);
    return { httpStatus: status(res), twin: res.responseBody };
  },
  async create(cmd) {
    const res = await registry.create({ deviceId: cmd.device });
    return { httpStatus: status(res), device: res.responseBody };
  },
  async delete(cmd) {
    const res = await registry.delete(cmd.device);
    return { httpStatus: status(res) };
  },
  async list() {
    const res = await registry.list();
    return { httpStatus: status(res), devices: res.responseBody.map((d) => d.deviceId) };
  },
};

function errorResult(err) {
  const res = err && err.response;
  return {
    ok: false,
    error: err && err.constructor && err.constructor.name,
    name: err && err.name,
    message: String(err && err.message),
    httpStatus: res ? res.statusCode : null,
    body: err && typeof err.responseBody === 'string' ? err.responseBody : null,
  };
}

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

function main() {
  const cs = process.env.SERVICE_CONNECTION_STRING;
  if (!cs) throw new Error('SERVICE_CONNECTION_STRING is not set');
  registry = Registry.fromConnectionString(cs);
  print({ event: 'ready' });
  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    chain = chain.then(() => run(line));
  });
  rl.on('close', () => process.exit(0)); // the test closes stdin to stop us
}

try {
  main();
} catch (err) {
  print({ event: 'error', where: 'main', message: String(err && err.message) });
  process.exit(1);
}
