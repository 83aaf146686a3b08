package engine

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// plainPrefixByByte is the definition plainPrefix must equal.
func plainPrefixByByte(s []byte) int {
	for i, c := range s {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return i
		}
	}
	return len(s)
}

// TestPlainPrefixEveryByteEveryPosition puts each of the 256 byte values at
// each position of a run of plain bytes long enough to cover a word step, a
// second word and the byte-wise tail.
func TestPlainPrefixEveryByteEveryPosition(t *testing.T) {
	for n := range 20 {
		for pos := range n {
			for c := range 256 {
				s := make([]byte, n)
				for i := range s {
					s[i] = 'a' + byte(i%26)
				}
				s[pos] = byte(c)
				want := plainPrefixByByte(s)
				if got := plainPrefix(s); got != want {
					t.Fatalf("%q: plainPrefix([]byte) = %d, want %d", s, got, want)
				}
				if got := plainPrefix(string(s)); got != want {
					t.Fatalf("%q: plainPrefix(string) = %d, want %d", s, got, want)
				}
			}
		}
	}
}

// TestPlainPrefixRandom compares random strings over an alphabet dense in
// edge bytes (0x1f, 0x20, '"', '!', '#', '\\', '[', ']', 0x7f, 0x80, 0xff).
func TestPlainPrefixRandom(t *testing.T) {
	alphabet := []byte{0x00, 0x1f, 0x20, '!', '"', '#', '[', '\\', ']', 'a', 0x7e, 0x7f, 0x80, 0xc3, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		s := make([]byte, r.IntN(40))
		for i := range s {
			if r.IntN(8) == 0 {
				s[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				s[i] = 'x'
			}
		}
		if got, want := plainPrefix(s), plainPrefixByByte(s); got != want {
			t.Fatalf("%q: plainPrefix = %d, want %d", s, got, want)
		}
	}
}

// BenchmarkPlainPrefix compares the word-at-a-time scan with the byte loop
// it replaces, over 8 KB of plain ASCII (an echoed payload's pad).
func BenchmarkPlainPrefix(b *testing.B) {
	s := bytes.Repeat([]byte("x"), 8<<10)
	b.Run("word", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			if plainPrefix(s) != len(s) {
				b.Fatal("stopped early")
			}
		}
	})
	b.Run("byte", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			if plainPrefixByByte(s) != len(s) {
				b.Fatal("stopped early")
			}
		}
	})
}
