package invoke

import (
	"context"
	"sync"

	"github.com/methodd/methodd/iothub"
)

// InvokeMany calls req on every target with at most parallel calls in flight
// (parallel < 1 means 1) and hands each Outcome to out as it completes, so in
// completion order. out is called from the calling goroutine only, never
// concurrently; InvokeMany returns once every target has had exactly one
// Outcome. When ctx ends, calls in flight end with ctx's error and targets
// not started yet get an Outcome with that error and Attempts 0.
func (c *Client) InvokeMany(ctx context.Context, targets []Target, req iothub.MethodRequest, parallel int, out func(Outcome)) {
	parallel = max(1, min(parallel, len(targets)))
	jobs := make(chan Target)
	results := make(chan Outcome, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			// Each worker's requests derive from its own context, so that
			// they do not all contend for the lock of ctx's child set.
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for t := range jobs {
				results <- c.one(wctx, t, req)
			}
		})
	}
	go func() {
		defer close(results)
		defer wg.Wait()
		defer close(jobs)
		for i, t := range targets {
			select {
			case jobs <- t:
			case <-ctx.Done():
				for _, rest := range targets[i:] {
					results <- Outcome{Target: rest, Err: ctx.Err()}
				}
				return
			}
		}
	}()
	for o := range results {
		out(o)
	}
}

// one makes one call of a fan-out and times it.
func (c *Client) one(ctx context.Context, t Target, req iothub.MethodRequest) Outcome {
	start := c.now()
	res, attempts, err := c.invoke(ctx, t, req)
	return Outcome{Target: t, Result: res, Err: err, Latency: c.now().Sub(start), Attempts: attempts}
}
