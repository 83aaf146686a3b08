package handlersfile

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// loadWithin runs Load in a goroutine and fails the test if it does not
// return within d (a FIFO nobody writes to used to block it for ever).
func loadWithin(t *testing.T, path string, d time.Duration) (Loaded, error) {
	t.Helper()
	type result struct {
		l   Loaded
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := Load(path, opts())
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-time.After(d):
		t.Fatalf("Load(%s) did not return within %v", path, d)
		return Loaded{}, nil
	}
}

// TestLoadRefusesAnOversizeFile: a sparse 1 GiB file and a file one byte
// over MaxSize are refused from their size, naming the limit, without
// reading them; a file of exactly MaxSize is read.
func TestLoadRefusesAnOversizeFile(t *testing.T) {
	for _, size := range []int64{1 << 30, MaxSize + 1} {
		_, path := tree(t, valid)
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		l, err := loadWithin(t, path, 5*time.Second)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit of 1048576 bytes") || l.Set != nil {
			t.Fatalf("Load of %d bytes = %v; want ErrTooLarge naming the limit", size, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("refusing %d bytes took %v, want well under a second", size, el)
		}
	}
	_, path := tree(t, "")
	padded := valid + "#" + strings.Repeat("x", MaxSize-len(valid)-2) + "\n"
	if err := os.WriteFile(path, []byte(padded), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := Load(path, opts()); err != nil || len(l.Data) != MaxSize {
		t.Fatalf("Load of exactly MaxSize bytes: %d bytes, %v; want it loaded", len(l.Data), err)
	}
}

// TestParseRefusesOversizeData: the reloader's bytes get the same limit.
func TestParseRefusesOversizeData(t *testing.T) {
	_, path := tree(t, valid)
	if _, err := Parse(path, make([]byte, MaxSize+1), opts()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Parse of MaxSize+1 bytes = %v, want ErrTooLarge", err)
	}
}

// TestReadFileTimesOut: a read that hangs (a hung network mount) is given
// up after the timeout with ErrReadTimeout.
func TestReadFileTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hang := func(string) ([]byte, error) { <-release; return nil, nil }
	start := time.Now()
	_, err := readFile("hung.yaml", 50*time.Millisecond, hang)
	if !errors.Is(err, ErrReadTimeout) {
		t.Fatalf("readFile = %v, want ErrReadTimeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("gave up after %v, want about 50ms", el)
	}
}
