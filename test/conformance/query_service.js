'use strict';
// An SDK back end querying twins: azure-iothub's Registry.createQuery and
// Query.nextAsTwin, used as an application pages through a query. Run with
// `node -r ./redirect.js query_service.js` (see redirect.js). It prints
// {"event":"ready"}, then runs commands read from stdin, one JSON object per
// line, one at a time in order:
//   {"id":"c1","op":"tag","device":"d","tags":{...}}
//        Registry.updateTwin(d, {tags}, '*')
//   {"id":"c2","op":"query","query":"SELECT ...","pageSize":N}
//        q = Registry.createQuery(query, pageSize), then q.nextAsTwin() while
//        q.hasMoreResults (at most 50 pages: a hub that never ends the query
//        must not hang us)
// and prints one result line per command:
//   {"event":"result","id":..,"op":"tag","ok":true,"httpStatus":N}
//   {"event":"result","id":..,"op":"query","ok":true,"pages":[{"httpStatus":N,
//     "itemType":..,"hasMoreResults":bool,"continuation":"<token>"|null,
//     "twins":[{"class":"Twin","deviceId":..,"moduleId":..,"etag":..,"tags":{...}}]}],
//     "stopped":true when the 50-page bound was hit}
//   {"event":"result","id":..,"op":..,"ok":false,"error":"<constructor name>","name":..,
//    "message":..,"httpStatus":N|null,"body":"<raw HTTP body>"|null,"pages":[...]}
// Closing stdin exits. The connection string comes from
// SERVICE_CONNECTION_STRING; trust the hub's CA with NODE_EXTRA_CA_CERTS.
const { serve } = require('./cmdloop');
const { Registry } = require('azure-iothub');

const maxPages = 50;


let registry;

function status(res) {
  return res && res.httpResponse ? res.httpResponse.statusCode : null;
}

function twinSummary(t) {
  return {
    class: t && t.constructor && t.constructor.name,
    deviceId: t.deviceId,
    moduleId: t.moduleId,
    etag: t.etag,
    tags: t.tags,
  };
}

const ops = {
  async tag(cmd) {
    const res = await registry.updateTwin(cmd.device, { tags: cmd.tags }, '*');
    return { httpStatus: status(res) };
  },
  async query(cmd, out) {
    const q = registry.createQuery(cmd.query, cmd.pageSize);
    out.pages = [];
    while (q.hasMoreResults) {
      if (out.pages.length === maxPages) {
        out.stopped = true;
        break;
      }
      const res = await q.nextAsTwin(); // {result: Twin[], message: the HTTP response}
      const m = res.message || {};
      const headers = m.headers || {};
      out.pages.push({
        httpStatus: m.statusCode === undefined ? null : m.statusCode,
        itemType: headers['x-ms-item-type'] === undefined ? null : headers['x-ms-item-type'],
        hasMoreResults: q.hasMoreResults,
        continuation: q.continuationToken === undefined ? null : q.continuationToken,
        twins: (res.result || []).map(twinSummary),
      });
    }
    return out;
  },
};

serve(ops, (cs) => {
  registry = Registry.fromConnectionString(cs);
});
