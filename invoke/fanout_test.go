package invoke

import (
	"context"
	"fmt"
	"testing"

	"github.com/methodd/methodd/iothub"
)

func TestInvokeManyBoundsParallelismAndReportsEachOnce(t *testing.T) {
	hub := newFakeHub(t)
	opts := hub.options()
	opts.MaxConns = 4
	c, err := NewClient(hub.connectionString(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var targets []Target
	for i := range 200 {
		targets = append(targets, Target{Device: fmt.Sprintf("dev-%02d", i)})
	}
	seen := map[string]int{}
	calling := false
	c.InvokeMany(context.Background(), targets, iothub.MethodRequest{MethodName: "echo", Payload: []byte(`[1]`), ResponseTimeoutInSeconds: 5}, 4, func(o Outcome) {
		if calling {
			t.Error("out called concurrently")
		}
		calling = true
		defer func() { calling = false }()
		seen[o.Target.Device]++
		if o.Err != nil || o.Result.Status != 200 || string(o.Result.Payload) != "[1]" || o.Attempts != 1 || o.Latency <= 0 {
			t.Errorf("%s: got %+v", o.Target, o)
		}
	})
	if len(seen) != 200 {
		t.Errorf("got %d distinct outcomes, want 200", len(seen))
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("%s reported %d times", d, n)
		}
	}
	hub.mu.Lock()
	maxIn := hub.maxInflight
	hub.mu.Unlock()
	if maxIn > 4 || maxIn < 1 {
		t.Errorf("hub saw %d calls in flight, want 1..4", maxIn)
	}
	hub.mu.Lock()
	conns := hub.conns
	hub.mu.Unlock()
	if conns > 4 {
		t.Errorf("hub accepted %d connections for 200 calls 4 at a time with MaxConns 4, want at most 4 (keep-alive)", conns)
	}
}

func TestInvokeManyCanceledReportsEveryTarget(t *testing.T) {
	hub := newFakeHub(t)
	c := hub.client(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	targets := []Target{{Device: "a"}, {Device: "b"}, {Device: "c"}, {Device: "d"}, {Device: "e"}}
	var n int
	c.InvokeMany(ctx, targets, iothub.MethodRequest{MethodName: "echo", ResponseTimeoutInSeconds: 5}, 2, func(o Outcome) {
		n++
		if o.Err == nil {
			t.Errorf("%s: got a result after cancel", o.Target)
		}
	})
	if n != len(targets) {
		t.Errorf("got %d outcomes, want %d", n, len(targets))
	}
}

func TestInvokeManyEmpty(t *testing.T) {
	hub := newFakeHub(t)
	hub.client(t).InvokeMany(context.Background(), nil, iothub.MethodRequest{MethodName: "echo"}, 16, func(o Outcome) {
		t.Errorf("unexpected outcome %+v", o)
	})
}
