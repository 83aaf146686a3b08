package engine

// plainPrefix returns the length of the longest prefix of s whose bytes a
// JSON string carries verbatim in both directions: printable ASCII other
// than '"' and '\\' (0x20..0x7f without 0x22 and 0x5c). The decoder and the
// encoder stop there to unescape, escape or check UTF-8; everything before it
// is copied in bulk. It tests eight bytes per step, which is what makes large
// payloads cheap: the bytes of an echoed payload pass through here twice.
func plainPrefix[T string | []byte](s T) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		t := s[i : i+8] // one bounds check; the compiler loads the word at once
		w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		// The sum is non-zero exactly when some byte of w is ≥ 0x80, < 0x20,
		// '"' or '\\' (the classic has-less and has-zero word tests; a
		// borrow only ever runs upward from a byte that matched, so "some
		// byte matched" is exact even where the per-byte bits are not).
		quote, backslash := w^(0x22*ones), w^(0x5c*ones)
		if (w|(w-0x20*ones)&^w|(quote-ones)&^quote|(backslash-ones)&^backslash)&high != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}
