package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/methodd/methodd/internal/localhub"
	"github.com/methodd/methodd/iothub"
)

// callTimeoutSeconds is responseTimeoutInSeconds of every benchmark call.
const callTimeoutSeconds = 30

// caller invokes a direct method on a device and returns the device's status
// and payload bytes. An error means the call got no reply from the device.
type caller interface {
	call(ctx context.Context, device, method string, payload []byte) (int, []byte, error)
}

// Path names, as they appear in the report.
const (
	pathMQTT = "MQTT"
	pathREST = "REST"
)

// mqttCaller calls through the hub's inline client (Hub.Invoke): the request
// goes straight onto the device's MQTT method topic, no REST in between.
type mqttCaller struct{ hub *localhub.Hub }

func (c mqttCaller) call(ctx context.Context, device, method string, payload []byte) (int, []byte, error) {
	res, e := c.hub.Invoke(ctx, device, "", iothub.MethodRequest{
		MethodName: method, Payload: payload, ResponseTimeoutInSeconds: callTimeoutSeconds,
	})
	if e != nil {
		return 0, nil, e
	}
	return res.Status, res.Payload, nil
}

// restCaller calls as a cloud caller does: POST /twins/{d}/methods over
// keep-alive HTTPS with a service SAS token.
type restCaller struct {
	client *http.Client
	base   string // https://127.0.0.1:P
	auth   string // SharedAccessSignature ...
}

// newRESTCaller builds a client that keeps up to conns connections alive to
// the hub's HTTPS address, trusting the hub's CA.
func newRESTCaller(info localhub.Info, conns int) (*restCaller, error) {
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", info.CAFile)
	}
	cs, err := iothub.ParseServiceConnectionString(info.ServiceConnectionString)
	if err != nil {
		return nil, err
	}
	auth, err := iothub.Sign(cs.HostName, cs.SharedAccessKey, cs.SharedAccessKeyName, time.Now().Add(6*time.Hour))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: localhub.HostName, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}
	return &restCaller{
		client: &http.Client{Transport: tr, Timeout: (callTimeoutSeconds + 10) * time.Second},
		base:   "https://" + info.HTTPSAddr,
		auth:   auth,
	}, nil
}

func (c *restCaller) call(ctx context.Context, device, method string, payload []byte) (int, []byte, error) {
	body := iothub.MethodRequest{MethodName: method, Payload: payload, ResponseTimeoutInSeconds: callTimeoutSeconds}.Encode()
	url := c.base + iothub.MethodsPath(device, "") + "?" + iothub.MethodsQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", c.auth)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, nil, iothub.ParseError(resp.StatusCode, resp.Header.Get(iothub.ErrorCodeHeader), b)
	}
	return parseResult(b)
}

// close drops the idle connections.
func (c *restCaller) close() { c.client.CloseIdleConnections() }

// parseResult splits a success body {"status":N,"payload":P}. The hub writes
// exactly that shape, which is sliced without decoding P (it may be 100 KB);
// anything else is decoded as JSON.
func parseResult(b []byte) (int, []byte, error) {
	const head, mid = `{"status":`, `,"payload":`
	if rest, ok := bytes.CutPrefix(b, []byte(head)); ok {
		if i := bytes.Index(rest, []byte(mid)); i > 0 && i < 4 && bytes.HasSuffix(rest, []byte("}")) {
			if st, err := strconv.Atoi(string(rest[:i])); err == nil {
				return st, rest[i+len(mid) : len(rest)-1], nil
			}
		}
	}
	var r iothub.MethodResult
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, nil, fmt.Errorf("success body is not {status,payload}: %w", err)
	}
	return r.Status, r.Payload, nil
}
