package engine

import "os"

// capture reads a pipe to EOF (or until it is closed or its read deadline
// passes), keeping at most limit bytes and discarding the rest, so that the
// child never blocks on a full pipe however much it writes.
type capture struct {
	limit     int
	buf       []byte
	truncated bool
}

// drain reads r until EOF or an error and then closes it.
func (c *capture) drain(r *os.File) {
	defer r.Close()
	var scratch []byte
	for {
		if len(c.buf) < c.limit {
			if cap(c.buf)-len(c.buf) == 0 {
				c.grow()
			}
			n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
			c.buf = c.buf[:len(c.buf)+n]
			if err != nil {
				return
			}
			continue
		}
		if scratch == nil {
			scratch = make([]byte, 32<<10)
		}
		n, err := r.Read(scratch)
		if n > 0 {
			c.truncated = true
		}
		if err != nil {
			return
		}
	}
}

// grow doubles the buffer (starting at 512 bytes), never beyond limit.
func (c *capture) grow() {
	n := max(512, 2*cap(c.buf))
	n = min(n, c.limit)
	nb := make([]byte, len(c.buf), n)
	copy(nb, c.buf)
	c.buf = nb
}
