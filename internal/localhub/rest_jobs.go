package localhub

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// Paging of the job list (§4.4, headers as §3.1).
const (
	jobPageDefault = 100  // items per page without x-ms-max-item-count
	jobPageMax     = 1000 // larger requested sizes are served as this
	itemTypeHeader = "x-ms-item-type"
	continuationH  = "x-ms-continuation"
	maxItemCountH  = "x-ms-max-item-count"
)

// routeJobs serves jobs v2 (fleet reference §4), with the twins' access
// (a service SAS of iothubowner or service) and errors in body format B:
//
//	PUT  /jobs/v2/{jobId}          create: 200 {"jobId","type","status":"queued"}
//	GET  /jobs/v2/{jobId}          the JobResponse
//	POST /jobs/v2/{jobId}/cancel   cancel; the JobResponse
//	GET  /jobs/v2/query            list: a bare array of JobResponse, paged
//
// Errors: 400004 ArgumentInvalid for a bad job id, start time, max
// execution time, condition (with its position), method or twin patch;
// 400 GenericBadRequest for an unknown type; 413001 for a method payload
// over 128 KB; 409 JobAlreadyExists for a duplicate id; 404002
// JobNotFound for an unknown id; 400 OperationNotAllowedInCurrentState for
// cancelling a finished job. A refused create creates nothing. The id
// "query" is reserved: GET /jobs/v2/query is the list.
func (a *restAPI) routeJobs() {
	a.route("/jobs/v2/{jobId}", a.failLegacy,
		endpoint{http.MethodGet, a.getJob},
		endpoint{http.MethodPut, a.createJob},
	)
	a.route("/jobs/v2/{jobId}/cancel", a.failLegacy, endpoint{http.MethodPost, a.cancelJob})
	// Not a.route: a method-less /jobs/v2/query would conflict with
	// PUT /jobs/v2/{jobId}; other methods reach that route's handlers.
	a.mux.HandleFunc("GET /jobs/v2/query", a.listJobs)
}

// createJob answers PUT /jobs/v2/{jobId}.
func (a *restAPI) createJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("jobId")
	err := a.admit(r, serviceConnect)
	var body []byte
	if err == nil {
		body, err = readBody(w, r, maxBodyBytes, "The job request exceeds the maximum size of the request body.")
	}
	var j *job
	if err == nil && id == "query" {
		err = argInvalid("The job id 'query' is reserved by this hub.")
	}
	if err == nil {
		j, err = a.h.newJob(id, body)
	}
	if err == nil {
		err = a.h.jobs.add(j)
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	a.h.log.LogAttrs(r.Context(), slog.LevelInfo, "job created", slog.String(logkey.JobID, id),
		slog.String(logkey.Method, methodNameOf(j)))
	b, _ := json.Marshal(struct {
		JobID  string `json:"jobId"`
		Type   string `json:"type"`
		Status string `json:"status"`
	}{id, j.state.Type, jobQueued})
	a.writeJSON(w, http.StatusOK, "", b)
}

// methodNameOf is a method job's method name, "" for a twin job.
func methodNameOf(j *job) string {
	if j.state.Method == nil {
		return ""
	}
	return j.state.Method.MethodName
}

// getJob answers GET /jobs/v2/{jobId}.
func (a *restAPI) getJob(w http.ResponseWriter, r *http.Request) {
	j, err := a.jobTarget(r)
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	a.writeJob(w, j)
}

// cancelJob answers POST /jobs/v2/{jobId}/cancel.
func (a *restAPI) cancelJob(w http.ResponseWriter, r *http.Request) {
	err := a.admit(r, serviceConnect)
	var j *job
	if err == nil {
		j, err = a.h.jobs.cancel(r.PathValue("jobId"))
	}
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	a.writeJob(w, j)
}

// jobTarget admits r and returns the job its path names (404002 if none).
func (a *restAPI) jobTarget(r *http.Request) (*job, error) {
	if err := a.admit(r, serviceConnect); err != nil {
		return nil, err
	}
	return a.h.jobs.get(r.PathValue("jobId"))
}

// writeJob answers 200 with j's JobResponse.
func (a *restAPI) writeJob(w http.ResponseWriter, j *job) {
	b, _ := json.Marshal(j.response())
	a.writeJSON(w, http.StatusOK, "", b)
}

// listJobs answers GET /jobs/v2/query[?jobType=][&jobStatus=]: the jobs
// of that type and status (compared case-insensitively; C# sends
// ScheduleDeviceMethod, Completed), oldest first, as a bare array with
// x-ms-item-type jobResponse; x-ms-continuation only when more follow.
func (a *restAPI) listJobs(w http.ResponseWriter, r *http.Request) {
	if err := a.admit(r, serviceConnect); err != nil {
		a.failLegacy(w, r, err)
		return
	}
	size, from, err := pageOf(r)
	if err != nil {
		a.failLegacy(w, r, err)
		return
	}
	q := r.URL.Query()
	typ, status := q.Get("jobType"), q.Get("jobStatus")
	var all []jobResponse
	for _, j := range a.h.jobs.all() {
		jr := j.response()
		if (typ == "" || strings.EqualFold(typ, jr.Type)) && (status == "" || strings.EqualFold(status, jr.Status)) {
			all = append(all, jr)
		}
	}
	page := []jobResponse{}
	if from < len(all) {
		page = all[from:min(from+size, len(all))]
	}
	w.Header().Set(itemTypeHeader, "jobResponse")
	if next := from + len(page); next < len(all) {
		w.Header().Set(continuationH, base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(next))))
	}
	b, _ := json.Marshal(page)
	a.writeJSON(w, http.StatusOK, "", b)
}

// pageOf reads the page size (x-ms-max-item-count: 1.., default
// jobPageDefault, at most jobPageMax) and the offset a continuation token
// carries. The error is 400004.
func pageOf(r *http.Request) (size, from int, err error) {
	size = jobPageDefault
	if v := r.Header.Get(maxItemCountH); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, iothub.NewError(iothub.CodeArgumentInvalid, "x-ms-max-item-count must be a positive integer.")
		}
		size = min(n, jobPageMax)
	}
	if tok := r.Header.Get(continuationH); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return 0, 0, iothub.NewError(iothub.CodeArgumentInvalid, "The continuation token is not valid.")
		}
		from = n
	}
	return size, from, nil
}
