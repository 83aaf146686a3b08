package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// userHZ is the unit of /proc's CPU times: sysconf(_SC_CLK_TCK), 100 on
// every Linux platform Go supports (as Prometheus's procfs assumes).
const userHZ = 100

// processCollector yields client_golang's process collector's families
// that /proc/self gives, under its names, HELP texts and types, read at
// scrape time. A family whose source cannot be read is left out.
type processCollector struct{}

// Names are the families Collect may yield.
func (processCollector) Names() []string {
	return []string{"process_cpu_seconds_total", "process_max_fds", "process_open_fds",
		"process_resident_memory_bytes", "process_start_time_seconds", "process_virtual_memory_bytes"}
}

// Collect appends the process's families now.
func (processCollector) Collect(fams []Family) []Family {
	gauge := func(name, help string, v float64) Family {
		return Family{Name: name, Help: help, Type: GaugeType, Series: []Series{{Value: v}}}
	}
	if st, err := readSelfStat(); err == nil {
		fams = append(fams,
			Family{Name: "process_cpu_seconds_total", Help: "Total user and system CPU time spent in seconds.",
				Type: CounterType, Series: []Series{{Value: float64(st.utime+st.stime) / userHZ}}},
			gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", float64(st.vsize)),
			gauge("process_resident_memory_bytes", "Resident memory size in bytes.", float64(st.rss*uint64(os.Getpagesize()))))
		if boot, err := bootTime(); err == nil {
			fams = append(fams, gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
				float64(boot)+float64(st.starttime)/userHZ))
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		fams = append(fams, gauge("process_open_fds", "Number of open file descriptors.", float64(len(fds))))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		fams = append(fams, gauge("process_max_fds", "Maximum number of open file descriptors.", float64(lim.Cur)))
	}
	return fams
}

// selfStat holds the fields of /proc/self/stat Collect uses: CPU times
// and start time in userHZ ticks, vsize in bytes, rss in pages.
type selfStat struct {
	utime, stime, starttime, vsize, rss uint64
}

// readSelfStat reads /proc/self/stat (proc(5)).
func readSelfStat() (selfStat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return selfStat{}, err
	}
	// The command name, field 2, is in parentheses and may hold anything:
	// the fields that follow start after the last ')', with field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return selfStat{}, errors.New("metrics: /proc/self/stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return selfStat{}, errors.New("metrics: /proc/self/stat: too few fields")
	}
	var st selfStat
	for _, p := range []struct {
		field int // as proc(5) numbers it
		dst   *uint64
	}{{14, &st.utime}, {15, &st.stime}, {22, &st.starttime}, {23, &st.vsize}, {24, &st.rss}} {
		if *p.dst, err = strconv.ParseUint(f[p.field-3], 10, 64); err != nil {
			return selfStat{}, err
		}
	}
	return st, nil
}

// bootTime is the system's boot time (Unix seconds), /proc/stat's btime.
func bootTime() (uint64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.Join(errors.New("metrics: /proc/stat: no btime"), sc.Err())
}
