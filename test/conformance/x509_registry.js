'use strict';
// An SDK back end registering X.509 devices: azure-iothub's Registry.create,
// used as an application would. Run with `node -r ./redirect.js x509_registry.js`
// (see redirect.js); trust the hub's CA with NODE_EXTRA_CA_CERTS. Commands on
// stdin and results on stdout as in cmdloop.js:
//   {"id":"c1","op":"createSelfSigned","device":"d","primary":"<hex>","secondary":"<hex>"?}
//        Registry.create({deviceId, authentication: {x509Thumbprint: {primaryThumbprint, secondaryThumbprint}}})
//        (the SDK adds type "selfSigned" itself)
//   {"id":"c2","op":"createCA","device":"d"}
//        Registry.create({deviceId, authentication: {type: "certificateAuthority"}})
//   {"id":"c3","op":"get","device":"d"}      Registry.get
// Each result carries "httpStatus" and "device": JSON of the SDK's Device.
const { serve } = require('./cmdloop');
const { Registry } = require('azure-iothub');

let registry;

function status(res) {
  return res && res.httpResponse ? res.httpResponse.statusCode : null;
}

const ops = {
  async createSelfSigned(cmd) {
    const x509Thumbprint = { primaryThumbprint: cmd.primary };
    if (cmd.secondary) x509Thumbprint.secondaryThumbprint = cmd.secondary;
    const res = await registry.create({ deviceId: cmd.device, authentication: { x509Thumbprint } });
    return { httpStatus: status(res), device: res.responseBody };
  },
  async createCA(cmd) {
    const res = await registry.create({ deviceId: cmd.device, authentication: { type: 'certificateAuthority' } });
    return { httpStatus: status(res), device: res.responseBody };
  },
  async get(cmd) {
    const res = await registry.get(cmd.device);
    return { httpStatus: status(res), device: res.responseBody };
  },
};

serve(ops, (cs) => {
  registry = Registry.fromConnectionString(cs);
});
