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
const { serve } = require('./cmdloop');
const { Registry } = require('azure-iothub');


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

serve(ops, (cs) => {
  registry = Registry.fromConnectionString(cs);
});
