'use strict';
// An SDK service caller: azure-iothub's Client.invokeDeviceMethod, used as an
// application would. Run with `node -r ./redirect.js service.js SPEC` where
// SPEC is JSON: {"calls":[CALL,...]} runs the calls concurrently once, or
// {"calls":[CALL],"everyMs":N,"forMs":M,"stopOnFailure":true} repeats them
// every N ms for M ms (stopping at the first failed call if asked).
// CALL: {"device":"d","module":"m"?,"methodName":"x","payload":any?,
//        "responseTimeoutInSeconds":n?,"connectTimeoutInSeconds":n?}
// The connection string comes from SERVICE_CONNECTION_STRING; trust the hub's
// CA with NODE_EXTRA_CA_CERTS.
//
// Prints one JSON line per call:
//   {"i":0,"ok":true,"httpStatus":200,"contentType":..,"status":N,"payload":"<JSON.stringify(payload)>","result":"<JSON.stringify(result)>"}
//   {"i":0,"ok":false,"error":"<constructor name>","httpStatus":N,"body":"<raw body>","errorCode":N|null,"errorName":"<iothub-errorcode>"}
// and finally {"done":true,"failed":K}.
const { Client } = require('azure-iothub');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// errorCode from the current nested body shape: {"Message":"{\"errorCode\":404103,...}",...}.
function innerErrorCode(body) {
  try {
    const outer = JSON.parse(body);
    const inner = JSON.parse(outer.Message);
    return typeof inner.errorCode === 'number' ? inner.errorCode : null;
  } catch (_) {
    return null;
  }
}

function invoke(client, call) {
  const params = { methodName: call.methodName };
  for (const k of ['payload', 'responseTimeoutInSeconds', 'connectTimeoutInSeconds']) {
    if (k in call) params[k] = call[k];
  }
  return new Promise((resolve) => {
    const done = (err, result, response) => {
      if (err) {
        const res = err.response;
        resolve({
          ok: false,
          error: err.constructor && err.constructor.name,
          message: err.message,
          httpStatus: res ? res.statusCode : null,
          body: err.responseBody === undefined ? null : err.responseBody,
          errorCode: err.responseBody ? innerErrorCode(err.responseBody) : null,
          errorName: res ? res.headers['iothub-errorcode'] || null : null,
        });
        return;
      }
      resolve({
        ok: true,
        httpStatus: response ? response.statusCode : null,
        contentType: response ? response.headers['content-type'] || null : null,
        status: result && typeof result === 'object' ? result.status : null,
        payload: result && typeof result === 'object' && 'payload' in result ? JSON.stringify(result.payload) : null,
        result: JSON.stringify(result),
      });
    };
    if (call.module) client.invokeDeviceMethod(call.device, call.module, params, done);
    else client.invokeDeviceMethod(call.device, params, done);
  });
}

async function main() {
  const spec = JSON.parse(process.argv[2] || '{}');
  const cs = process.env.SERVICE_CONNECTION_STRING;
  if (!cs) throw new Error('SERVICE_CONNECTION_STRING is not set');
  const client = Client.fromConnectionString(cs);
  let failed = 0;
  let i = 0;
  const round = async () => {
    await Promise.all(spec.calls.map(async (call) => {
      const n = i++;
      const t0 = Date.now();
      const r = await invoke(client, call);
      if (!r.ok) failed++;
      emit(Object.assign({ i: n, ms: Date.now() - t0 }, r));
    }));
  };
  if (spec.everyMs) {
    const end = Date.now() + spec.forMs;
    while (Date.now() < end && !(spec.stopOnFailure && failed > 0)) {
      const next = Date.now() + spec.everyMs;
      await round();
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
  } else {
    await round();
  }
  emit({ done: true, failed });
  process.exit(0);
}

main().catch((err) => {
  emit({ fatal: String(err && err.message) });
  process.exit(1);
});
