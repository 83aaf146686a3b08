//go:build race

package reliability

// raceEnabled: the race detector's own memory (shadow and history of every
// goroutine ever created) grows with the number of calls, so under -race
// TestSoak judges the Go heap instead of RSS (which it still logs).
const raceEnabled = true
