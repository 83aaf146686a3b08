package localhub

import (
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/methodd/methodd/internal/logkey"
	"github.com/methodd/methodd/iothub"
)

// infoWriteInterval is the least time between two hub.json writes of the
// background writer: a burst of registry REST changes rewrites hub.json
// (a connection string per identity, O(registry)) about twice a second
// instead of once per change.
const infoWriteInterval = 500 * time.Millisecond

// infoWriter is the background writer of hub.json after registry REST
// changes (refreshInfo). It writes at most once per infoWriteInterval:
// a change while it is idle is written at once, and refreshInfo waits for
// that write, so that a lone change is in hub.json when its request is
// answered; changes made while it writes or waits out the interval are
// written together when the interval ends, without waiting. Start starts
// it once hub.json is first written; Close stops it and writes the last
// state.
type infoWriter struct {
	kick    chan struct{} // buffered 1: a change is waiting
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the writer has returned
	started bool          // set by Start, read by Close

	mu      sync.Mutex
	idle    bool          // waiting for a change, the interval over
	written chan struct{} // closed when the next write is done
}

// newInfoWriter returns a writer that is not started yet; until it is,
// markInfoDirty only records the change.
func newInfoWriter() *infoWriter {
	return &infoWriter{
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		written: make(chan struct{}),
	}
}

// markInfoDirty has hub.json rewritten by the background writer: at once,
// waiting for the write, when the writer is idle; else within about
// infoWriteInterval, without waiting.
func (h *Hub) markInfoDirty() {
	w := h.infoW
	h.infoDirty.Store(true)
	w.mu.Lock()
	var wait chan struct{}
	if w.idle {
		wait = w.written // the write this kick starts includes our change
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default: // a write is already asked for
	}
	if wait != nil {
		select {
		case <-wait:
		case <-w.done:
		}
	}
}

// startInfoWriter starts the background hub.json writer.
func (h *Hub) startInfoWriter() {
	h.infoW.started = true
	go h.runInfoWriter()
}

// runInfoWriter writes hub.json when it is dirty, then waits
// infoWriteInterval before the next write.
func (h *Hub) runInfoWriter() {
	w := h.infoW
	defer close(w.done)
	for {
		w.mu.Lock()
		w.idle = !h.infoDirty.Load()
		w.mu.Unlock()
		select {
		case <-w.kick:
		case <-w.stop:
			return
		}
		w.mu.Lock()
		w.idle = false
		written := w.written
		w.written = make(chan struct{})
		w.mu.Unlock()
		if h.infoDirty.Load() {
			if err := h.writeInfo(); err != nil {
				h.log.Error("hub.json not rewritten", logkey.Err, err) // written again at the next change, Close or start
			}
		}
		close(written)
		t := time.NewTimer(infoWriteInterval)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			return
		}
	}
}

// stopInfoWriter stops the background writer, waits for it and writes
// hub.json when a change is still waiting. A writer never started (a
// failed Start) writes nothing.
func (h *Hub) stopInfoWriter() error {
	if h.infoW == nil || !h.infoW.started {
		return nil
	}
	close(h.infoW.stop)
	<-h.infoW.done
	if h.infoDirty.Load() {
		return h.writeInfo()
	}
	return nil
}

// currentInfoLocked returns the hub's Info as of now: the listeners of
// h.info and the registry's identities (an X.509 identity's connection
// string has x509=true and no key). h.infoMu is held.
func (h *Hub) currentInfoLocked() Info {
	info := h.info
	_, mqttPort, _ := net.SplitHostPort(info.MQTTAddr)
	_, httpsPort, _ := net.SplitHostPort(info.HTTPSAddr)
	ownerKey, _ := h.reg.policyKey(policyOwner)
	info.ServiceConnectionString = iothub.ConnectionString{
		HostName:            HostName + ":" + httpsPort,
		SharedAccessKeyName: policyOwner,
		SharedAccessKey:     ownerKey,
	}.String()
	ids := h.reg.identities()
	info.Devices = make(map[string]string, len(ids))
	for id, key := range ids {
		if key == "" { // an X.509 identity
			info.Devices[id] = x509ConnectionString(id, HostName+":"+mqttPort)
			continue
		}
		d, m := iothub.SplitClientID(id)
		info.Devices[id] = iothub.ConnectionString{
			HostName:        HostName,
			DeviceID:        d,
			ModuleID:        m,
			SharedAccessKey: key,
			GatewayHostName: HostName + ":" + mqttPort,
		}.String()
	}
	h.x509InfoLocked(&info)
	h.dpsInfoLocked(&info)
	if h.lock != nil {
		info.PID, info.StartedAt = h.lock.holder.PID, h.lock.holder.StartedAt
	}
	return info
}

// writeInfo writes hub.json with the current Info, atomically. The dirty
// mark is cleared before the registry is read: a change made meanwhile
// marks it again.
func (h *Hub) writeInfo() error {
	h.infoMu.Lock()
	defer h.infoMu.Unlock()
	h.infoDirty.Store(false)
	info := h.currentInfoLocked()
	if err := writeJSONAtomic(filepath.Join(h.opts.Dir, infoFile), info); err != nil {
		h.infoDirty.Store(true) // try again at the next write
		return err
	}
	h.info = info
	return nil
}
