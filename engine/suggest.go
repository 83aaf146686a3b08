package engine

import (
	"fmt"
	"strings"
)

// suggest returns the candidate closest to word when it is close enough to be
// a plausible typo (edit distance at most max(1, len/3), case-insensitive),
// else "".
func suggest(word string, candidates []string) string {
	best, bestDist := "", -1
	lw := strings.ToLower(word)
	for _, c := range candidates {
		d := editDistance(lw, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist >= 0 && bestDist <= max(1, len(word)/3) {
		return best
	}
	return ""
}

// unknownKeyMessage words the diagnostic for an unknown key, with a
// did-you-mean suggestion or else the list of valid keys.
func unknownKeyMessage(key, where string, valid []string) string {
	if s := suggest(key, valid); s != "" {
		return fmt.Sprintf("unknown key %q in %s; did you mean %q?", key, where, s)
	}
	return fmt.Sprintf("unknown key %q in %s (valid keys: %s)", key, where, strings.Join(valid, ", "))
}

// editDistance is the Levenshtein distance between a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
