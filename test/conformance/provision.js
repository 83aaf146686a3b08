'use strict';
// An SDK device that provisions itself: azure-iot-provisioning-device +
// azure-iot-provisioning-device-mqtt with a security client from
// azure-iot-security-symmetric-key or azure-iot-security-x509, used as the
// SDK's samples (register_symkey.js, register_symkeygroup.js, register_x509.js)
// do; then, if asked, it becomes an azure-iot-device client of the assigned
// hub with the same credentials. Prints one JSON object per line on stdout:
//   {"event":"registered","registrationStatus":..,"assignedHub":..,"deviceId":..,"registrationId":..,"state":"<JSON of registrationState>"}
//   {"event":"dps","topic":..,"body":..}                a DPS response the transport received (observation only)
//   {"event":"ready"}                                   connected to the assigned hub and subscribed to methods
//   {"event":"method","method":..,"rid":..,"payload":..}  as device.js
//   {"event":"replied","method":..,"status":..}
//   {"event":"error","where":"register"|"device"|"main","name":"<constructor name>","message":..,
//    "status":N|null,"result":"<JSON of err.result>"|null}
//        status: the DPS response status, from the topic of the response that failed
//
// Environment:
//   DPS_HOST             provisioningHost ("localhost:PORT"); the transport dials mqtts://DPS_HOST and
//                        takes no CA option: trust the hub's CA with NODE_EXTRA_CA_CERTS
//   DPS_TRANSPORT        mqtt (default) or mqttws: MqttWs dials wss://DPS_HOST:443/$iothub/websocket,
//                        so DPS_HOST is then a bare host and mqtt_redirect.js sends HOST:443 to the endpoint
//   DPS_ID_SCOPE         the id scope
//   DPS_REGISTRATION_ID  the registration id
//   one of
//     DPS_KEY              an individual enrollment's symmetric key
//     DPS_GROUP_KEY        an enrollment group's key: the device key is derived from it
//                          (computeDerivedSymmetricKey, register_symkeygroup.js)
//     DPS_CERT_FILE, DPS_CERT_KEY_FILE   X.509 (X509Security)
//   HUB_GATEWAY          optional: after `assigned`, connect to the assigned hub through
//                        GatewayHostName=HUB_GATEWAY ("localhost:PORT") and answer `echo`
//   DEVICE_CA_FILE       with HUB_GATEWAY: the hub's CA, setOptions({ca}) as device.js
// An X.509 device then needs `-r ./mqtt_redirect.js` (the SDK ignores GatewayHostName for X.509).
// Closing stdin exits.
const crypto = require('crypto');
const fs = require('fs');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: ProvisioningMqtt, MqttWs: ProvisioningMqttWs } = require('azure-iot-provisioning-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { X509Security } = require('azure-iot-security-x509');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorEvent(where, err) {
  let status = null;
  const topic = err && err.transportObject && err.transportObject.topic;
  const m = typeof topic === 'string' && topic.match(/^\$dps\/registrations\/res\/(\d+)\//);
  if (m) status = Number(m[1]);
  return {
    event: 'error',
    where,
    name: err && err.constructor && err.constructor.name,
    message: String(err && err.message),
    status,
    result: err && err.result !== undefined ? JSON.stringify(err.result) : null,
  };
}

// The provisioning transports, reporting each DPS response they receive
// without changing what they do.
function observed(Base) {
  return class extends Base {
    constructor(mqttBase) {
      super(mqttBase);
      this._mqttBase.on('message', (topic, payload) => emit({ event: 'dps', topic, body: payload.toString('utf8') }));
    }
  };
}
const transports = { mqtt: observed(ProvisioningMqtt), mqttws: observed(ProvisioningMqttWs) };

// provisioning/device/samples/register_symkeygroup.js
function computeDerivedSymmetricKey(masterKey, regId) {
  return crypto.createHmac('SHA256', Buffer.from(masterKey, 'base64')).update(regId, 'utf8').digest('base64');
}

// The transport the device client was built with, to wait for the methods
// SUBACK (as device.js does).
let transport;
class RecordingMqtt extends Mqtt {
  constructor(authenticationProvider, mqttBase) {
    super(authenticationProvider, mqttBase);
    transport = this;
  }
}

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set');
  return v;
}

async function becomeDevice(state, auth) {
  const gateway = process.env.HUB_GATEWAY;
  let client;
  const options = {};
  if (process.env.DEVICE_CA_FILE) options.ca = process.env.DEVICE_CA_FILE;
  if (auth.key) {
    const cs = 'HostName=' + state.assignedHub + ';DeviceId=' + state.deviceId + ';SharedAccessKey=' + auth.key +
      ';GatewayHostName=' + gateway;
    client = Client.fromConnectionString(cs, RecordingMqtt);
  } else {
    client = Client.fromConnectionString('HostName=' + state.assignedHub + ';DeviceId=' + state.deviceId + ';x509=true', RecordingMqtt);
    options.cert = auth.cert.cert;
    options.key = auth.cert.key;
  }
  client.on('error', (err) => emit({ event: 'error', where: 'client', message: String(err && err.message) }));
  if (Object.keys(options).length > 0) await client.setOptions(options);
  await client.open();
  // onDeviceMethod subscribes in the background; a first method call would
  // race it, so wait for the SUBACK through the transport as device.js does.
  client.onDeviceMethod('echo', (req, res) => {
    emit({ event: 'method', method: 'echo', rid: req.requestId, payload: req.payload === undefined ? null : JSON.stringify(req.payload) });
    res.send(200, req.payload, (err) => {
      if (err) emit({ event: 'error', where: 'send echo', message: String(err && err.message) });
      else emit({ event: 'replied', method: 'echo', status: 200 });
    });
  });
  await new Promise((resolve, reject) => transport.enableMethods((err) => (err ? reject(err) : resolve())));
  emit({ event: 'ready' });
  return client;
}

async function main() {
  const host = need('DPS_HOST');
  const idScope = need('DPS_ID_SCOPE');
  const regId = need('DPS_REGISTRATION_ID');

  const auth = {};
  let security;
  if (process.env.DPS_CERT_FILE) {
    auth.cert = { cert: fs.readFileSync(process.env.DPS_CERT_FILE, 'utf8'), key: fs.readFileSync(need('DPS_CERT_KEY_FILE'), 'utf8') };
    security = new X509Security(regId, auth.cert);
  } else {
    auth.key = process.env.DPS_GROUP_KEY ? computeDerivedSymmetricKey(process.env.DPS_GROUP_KEY, regId) : need('DPS_KEY');
    security = new SymmetricKeySecurityClient(regId, auth.key);
  }
  const Transport = transports[process.env.DPS_TRANSPORT || 'mqtt'];
  if (!Transport) throw new Error('DPS_TRANSPORT must be mqtt or mqttws');
  const provisioningClient = ProvisioningDeviceClient.create(host, idScope, new Transport(), security);

  let state;
  try {
    state = await provisioningClient.register();
  } catch (err) {
    emit(errorEvent('register', err));
    return null;
  }
  emit({
    event: 'registered',
    registrationStatus: state && state.status,
    assignedHub: state && state.assignedHub,
    deviceId: state && state.deviceId,
    registrationId: state && state.registrationId,
    state: JSON.stringify(state),
  });
  if (!process.env.HUB_GATEWAY || !state || state.status !== 'assigned') return null;
  try {
    return await becomeDevice(state, auth);
  } catch (err) {
    emit(errorEvent('device', err));
    return null;
  }
}

main().then((client) => {
  const stop = () => (client ? client.close() : Promise.resolve()).finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop); // the test closes stdin to stop us
  process.stdin.resume();
}, (err) => {
  emit(errorEvent('main', err));
  process.exit(1);
});
