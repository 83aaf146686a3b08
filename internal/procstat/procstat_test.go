package procstat

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	// Field 2 holds spaces and a ')' to prove fields are counted after the last ')'.
	stat := "4242 (meth (odd) d) S 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 6 7 20 0 9 0 100 1000 250\n"
	got, err := ParseStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPU{Self: 168 * ClockTick, Children: 13 * ClockTick}); got != want {
		t.Errorf("ParseStat = %+v, want %+v", got, want)
	}
	if _, err := ParseStat([]byte("1 (x) S 1 2")); err == nil {
		t.Error("ParseStat of a short line: got nil error")
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tmethodd\nVmPeak:\t  99 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t 4096 kB\nThreads:\t7\n"
	got, err := ParseStatusKB([]byte(status), "VmRSS", "VmHWM", "RssAnon")
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 10240 || got[1] != 20480 || got[2] != 4096 {
		t.Errorf("ParseStatusKB = %v, want [10240 20480 4096]", got)
	}
	if _, err := ParseStatusKB([]byte("Name:\tzombie\n"), "VmRSS"); err == nil {
		t.Error("ParseStatusKB without VmRSS: got nil error")
	}
	if _, err := ParseStatusKB([]byte("VmRSS:\t12 MB\n"), "VmRSS"); err == nil {
		t.Error("ParseStatusKB of a non-kB value: got nil error")
	}
}

// TestReadSelf reads this process's own files, as pid 0 and by pid.
func TestReadSelf(t *testing.T) {
	for _, pid := range []int{0, os.Getpid()} {
		if kb, err := ReadStatusKB(pid, "VmRSS"); err != nil || kb[0] <= 0 {
			t.Errorf("ReadStatusKB(%d) = %v, %v", pid, kb, err)
		}
		if _, err := ReadCPU(pid); err != nil {
			t.Errorf("ReadCPU(%d): %v", pid, err)
		}
	}
}
