'use strict';
// The command loop the SDK back-end scripts (twin_service.js,
// job_service.js, query_service.js) share. serve(ops, setup) calls setup
// with SERVICE_CONNECTION_STRING, prints {"event":"ready"}, then runs the
// commands read from stdin, one JSON object per line, one at a time in
// order: ops[cmd.op](cmd, out) resolves to the fields of
//   {"event":"result","id":..,"op":..,"ok":true,...}
// and a rejection prints
//   {"event":"result","id":..,"op":..,...out,"ok":false,"error":"<constructor name>","name":..,
//    "message":..,"httpStatus":N|null,"body":"<raw HTTP body>"|null}
// where out holds what the op recorded before it failed. Closing stdin
// exits 0; a failing setup prints {"event":"error","where":"main",...} and
// exits 1.
const readline = require('readline');

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

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

async function run(ops, line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    print({ event: 'error', where: 'stdin', message: 'not JSON: ' + line });
    return;
  }
  const op = ops[cmd.op];
  const out = {};
  try {
    if (!op) throw new Error('unknown op ' + cmd.op);
    const r = await op(cmd, out);
    print(Object.assign({ event: 'result', id: cmd.id, op: cmd.op, ok: true }, r));
  } catch (err) {
    print(Object.assign({ event: 'result', id: cmd.id, op: cmd.op }, out, errorResult(err)));
  }
}

function serve(ops, setup) {
  try {
    const cs = process.env.SERVICE_CONNECTION_STRING;
    if (!cs) throw new Error('SERVICE_CONNECTION_STRING is not set');
    setup(cs);
  } catch (err) {
    print({ event: 'error', where: 'main', message: String(err && err.message) });
    process.exit(1);
  }
  print({ event: 'ready' });
  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    chain = chain.then(() => run(ops, line));
  });
  rl.on('close', () => process.exit(0)); // the test closes stdin to stop us
}

module.exports = { serve };
