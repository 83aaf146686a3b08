'use strict';
// An SDK back end using jobs v2: azure-iothub's JobClient (and Registry for
// tags and the devices.jobs query), used as an application would. Run with
// `node -r ./redirect.js job_service.js` (see redirect.js). It prints
// {"event":"ready"}, then runs commands read from stdin, one JSON object per
// line, one at a time in order:
//   {"id":"c1","op":"scheduleDeviceMethod","jobId":"j","condition":"...","params":{methodName,payload,responseTimeoutInSeconds},
//    "start":"<ISO>"?,"maxExec":N?}
//        JobClient.scheduleDeviceMethod; without start and maxExec the 3-argument promise form
//        (the SDK sends "startTime": null and no maxExecutionTimeInSeconds)
//   {"id":"c2","op":"scheduleTwinUpdate","jobId":"j","condition":"...","patch":{...},"start"?,"maxExec"?}
//   {"id":"c3","op":"getJob","jobId":"j"}      JobClient.getJob
//   {"id":"c4","op":"cancelJob","jobId":"j"}   JobClient.cancelJob
//   {"id":"c5","op":"waitJob","jobId":"j","status":"completed"}
//        JobClient.getJob every 100 ms until the job has that status (20 s at most)
//   {"id":"c6","op":"listJobs","type":"...","status":"...","pageSize":N}
//        JobClient.createQuery(type, status, pageSize).next() while hasMoreResults
//   {"id":"c7","op":"records","jobId":"j","pageSize":N?}
//        Registry.createQuery("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j'").next() while hasMoreResults
//   {"id":"c8","op":"updateTwin","device":"d","patch":{...}}   Registry.updateTwin(d, patch, '*')
//   {"id":"c9","op":"getTwin","device":"d"}                    Registry.getTwin(d)
// and prints one result line per command:
//   {"event":"result","id":..,"op":..,"ok":true,"httpStatus":N,"job":{...}|"items":[...],"pages":N|"twin":{...}}
//   {"event":"result","id":..,"op":..,"ok":false,"error":"<constructor name>","message":..,"httpStatus":N|null,"body":..}
// Closing stdin exits. The connection string comes from
// SERVICE_CONNECTION_STRING; trust the hub's CA with NODE_EXTRA_CA_CERTS.
const { serve } = require('./cmdloop');
const { JobClient, Registry } = require('azure-iothub');


let jobs;
let registry;

function status(res) {
  return res && res.response ? res.response.statusCode : (res && res.httpResponse ? res.httpResponse.statusCode : null);
}

function startOf(cmd) {
  return cmd.start ? new Date(cmd.start) : undefined;
}

async function pages(query) {
  const items = [];
  let n = 0;
  while (query.hasMoreResults) {
    // next() without an argument would send no token (its promise form
    // takes the token as the argument), so pass the query's own.
    const res = await query.next(query.continuationToken);
    n++;
    items.push(...res.result);
    if (n > 1000) throw new Error('more than 1000 pages');
  }
  return { items, pages: n };
}

const ops = {
  async scheduleDeviceMethod(cmd) {
    const res = cmd.start === undefined && cmd.maxExec === undefined
      ? await jobs.scheduleDeviceMethod(cmd.jobId, cmd.condition, cmd.params)
      : await jobs.scheduleDeviceMethod(cmd.jobId, cmd.condition, cmd.params, startOf(cmd), cmd.maxExec);
    return { httpStatus: status(res), job: res.jobStatus };
  },
  async scheduleTwinUpdate(cmd) {
    const res = cmd.start === undefined && cmd.maxExec === undefined
      ? await jobs.scheduleTwinUpdate(cmd.jobId, cmd.condition, cmd.patch)
      : await jobs.scheduleTwinUpdate(cmd.jobId, cmd.condition, cmd.patch, startOf(cmd), cmd.maxExec);
    return { httpStatus: status(res), job: res.jobStatus };
  },
  async getJob(cmd) {
    const res = await jobs.getJob(cmd.jobId);
    return { httpStatus: status(res), job: res.jobStatus };
  },
  async cancelJob(cmd) {
    const res = await jobs.cancelJob(cmd.jobId);
    return { httpStatus: status(res), job: res.jobStatus };
  },
  async waitJob(cmd) {
    const deadline = Date.now() + 20000;
    for (;;) {
      const res = await jobs.getJob(cmd.jobId);
      if (res.jobStatus.status === cmd.status || Date.now() > deadline) return { httpStatus: status(res), job: res.jobStatus };
      await new Promise((r) => setTimeout(r, 100));
    }
  },
  async listJobs(cmd) {
    return pages(jobs.createQuery(cmd.type, cmd.status, cmd.pageSize));
  },
  async records(cmd) {
    return pages(registry.createQuery("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + cmd.jobId + "'", cmd.pageSize));
  },
  async updateTwin(cmd) {
    const res = await registry.updateTwin(cmd.device, cmd.patch, '*');
    return { httpStatus: status(res), twin: res.responseBody };
  },
  async getTwin(cmd) {
    const res = await registry.getTwin(cmd.device);
    return { httpStatus: status(res), twin: res.responseBody };
  },
};

serve(ops, (cs) => {
  jobs = JobClient.fromConnectionString(cs);
  registry = Registry.fromConnectionString(cs);
});
