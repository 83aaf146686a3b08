package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/methodd/methodd/invoke"
	"github.com/methodd/methodd/iothub"
)

const jobUsage = `usage: methodd job create [flags] --where COND METHOD [PAYLOAD] [--id ID] [--start TIME] [--wait]
       methodd job show [flags] ID
       methodd job list [flags] [--type TYPE] [--status STATUS]
       methodd job cancel [flags] ID
       methodd job results [flags] ID

IoT Hub jobs (as az iot hub job does): the hub itself calls a direct method
on every device a condition selects and keeps each device's result.

create schedules METHOD with PAYLOAD (JSON text, @FILE or -; omitted: null)
on the devices --where selects: the WHERE part of a query only, e.g.
"tags.site = 'berlin'", "deviceId IN ['a','b']", or "*" for every device.
--id names the job (1..64 letters, digits and '-'; default a fresh
methodd-DATE-TIME-HEX id). --start is an RFC 3339 time
(2026-01-01T08:00:00Z) or a delay from now (+10m); default now. It prints
the job as the hub answered. With --wait it instead follows the job, every
500 ms (a progress bar on stderr when that is a terminal), and at its end
prints the results as results does. Ctrl-C stops waiting; the job goes on.

show prints a job; list prints one job per line (--type scheduleDeviceMethod
or scheduleUpdateTwin, --status queued, scheduled, running, completed,
failed or cancelled); cancel cancels a job and prints it; results prints one
JSON line per device, as invoke --devices-file does:
  {"device":"d","status":200,"payload":...}
  {"device":"d","error":{"code":404103,"message":"..."}}
and a summary on stderr.

The hub is --connection-string-file (or --connection-string, which other
local users can read in ps), else $IOTHUB_CONNECTION_STRING, else
$IOTHUB_SERVICE_CONNECTION_STRING; --local instead reads hub.json of the local
hub (methodd hub, methodd run --local) from --hub-dir.

Exit status: 0 success (create --wait and results: every device replied
2xx); 1 a device did not succeed, the job failed, was cancelled or is not
finished, or waiting was interrupted; 2 usage or input error, also an input
the hub refused (400, 409 duplicate id, 413); 3 job not found; 5 any other
hub, auth or network error (results: also when no device answered and such
an error occurred).

examples:
  methodd job create --local --where "tags.site = 'berlin'" reboot '{"delay": 5}' --wait
  methodd job create --where "deviceId IN ['gw-1','gw-2']" --start +1h --id nightly-1 getLogs
  methodd job show nightly-1
  methodd job list --status running
  methodd job cancel nightly-1
  methodd job results nightly-1 > results.jsonl`

// defaultJobPoll is how often --wait asks the hub about the job.
const defaultJobPoll = 500 * time.Millisecond

// jobCmd is `methodd job`.
type jobCmd struct {
	env  Env
	poll time.Duration // --wait's polling interval; zero means defaultJobPoll
	now  func() time.Time
}

// jobFlags are the parsed flags of the job subcommands; each subcommand
// registers the ones it has.
type jobFlags struct {
	hub        serviceFlags
	output     string
	where, id  string
	start      string
	timeout    time.Duration
	wait       bool
	typ, state string
}

// Run implements `methodd job`: it dispatches to the subcommand.
func (c *jobCmd) Run(ctx context.Context, args []string) error {
	subs := c.subs()
	if len(args) == 0 {
		fmt.Fprintln(c.env.Stderr, jobUsage)
		return usageError("job: want a subcommand: create, show, list, cancel or results")
	}
	if run, ok := subs[args[0]]; ok {
		return run(ctx, args[1:])
	}
	fmt.Fprintln(c.env.Stderr, jobUsage)
	switch args[0] {
	case "-h", "-help", "--help", "help":
		return flag.ErrHelp
	}
	return usageError("job: unknown subcommand %q: want create, show, list, cancel or results", args[0])
}

// subs is the table of job's subcommands.
func (c *jobCmd) subs() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{
		"create": c.create, "show": c.show, "list": c.list, "cancel": c.cancel, "results": c.results,
	}
}

// subcommands names job's subcommands (for completion).
func (c *jobCmd) subcommands() []string { return slices.Sorted(maps.Keys(c.subs())) }

// flagSet returns the flag set of a job subcommand with the hub flags.
func (c *jobCmd) flagSet(cmd string, f *jobFlags) *flag.FlagSet {
	fs := newFlagSet(cmd, jobUsage, c.env.Stderr)
	addHubFlags(fs, &f.hub, c.env.Stderr)
	return fs
}

// jobPlan is what create sends, validated.
type jobPlan struct {
	id, where, method string
	payload           json.RawMessage
	timeout           time.Duration
	start             time.Time
}

// create implements `methodd job create`.
func (c *jobCmd) create(ctx context.Context, args []string) error {
	const cmd = "job create"
	var f jobFlags
	fs := c.flagSet(cmd, &f)
	fs.StringVar(&f.where, "where", "", "the devices: a query's WHERE condition (required), e.g. \"tags.site = 'a'\"")
	fs.StringVar(&f.id, "id", "", "job id (default methodd-DATE-TIME-HEX)")
	fs.StringVar(&f.start, "start", "", "start time: RFC 3339 or +DURATION from now (default now)")
	durationVar(fs, &f.timeout, "timeout", 30*time.Second, "how long the hub waits for each device's reply (5s..300s, whole seconds)")
	fs.BoolVar(&f.wait, "wait", false, "follow the job to its end and print its results")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	p, err := c.plan(f, pos)
	if err != nil {
		return err
	}
	client, err := serviceClient(cmd, f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	job, err := client.CreateMethodJob(ctx, p.id, p.where, p.method, p.payload, p.timeout, p.start)
	if err != nil {
		return jobExit(err)
	}
	if f.wait {
		// stdout is for the device lines only, as invoke's fan-out.
		fmt.Fprintf(c.env.Stderr, "methodd: job %s %s; waiting for its end (Ctrl-C stops waiting, not the job)\n", p.id, job.Status)
		return c.wait(ctx, client, p.id)
	}
	if err := printDocument(c.env.Stdout, cmd, "job", job.Raw, "json"); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stderr, "methodd: job %s %s; follow it with `methodd job show %s`, results with `methodd job results %s`\n", p.id, job.Status, p.id, p.id)
	return nil
}

// plan validates create's flags and arguments and reads the payload; every
// input error is found here, before any network traffic.
func (c *jobCmd) plan(f jobFlags, args []string) (jobPlan, error) {
	const cmd = "job create"
	p := jobPlan{id: f.id, where: strings.TrimSpace(f.where), timeout: f.timeout}
	if err := f.hub.check(cmd); err != nil {
		return p, err
	}
	switch w := strings.ToUpper(p.where); {
	case w == "":
		return p, usageError("%s: --where is required: a query condition such as \"tags.site = 'a'\", or \"*\" for every device", cmd)
	case strings.HasPrefix(w, "SELECT ") || strings.HasPrefix(w, "WHERE "):
		return p, usageError("%s: --where takes the condition only, without SELECT … WHERE (e.g. \"tags.site = 'a'\")", cmd)
	}
	if f.timeout%time.Second != 0 || f.timeout < iothub.MinResponseTimeout*time.Second || f.timeout > iothub.MaxResponseTimeout*time.Second {
		return p, usageError("%s: --timeout %v: want whole seconds from 5s to 300s", cmd, f.timeout)
	}
	if p.id == "" {
		p.id = invoke.NewJobID(c.clock())
	} else if !invoke.ValidJobID(p.id) {
		return p, usageError("%s: --id %q: want 1..%d letters, digits and '-'", cmd, p.id, invoke.MaxJobIDLen)
	}
	start, err := parseStart(f.start, c.clock())
	if err != nil {
		return p, usageError("%s: --start: %v", cmd, err)
	}
	p.start = start
	if len(args) < 1 || len(args) > 2 {
		return p, usageError("%s: want METHOD [PAYLOAD], got %d arguments (-h for help)", cmd, len(args))
	}
	if !iothub.ValidMethodName(args[0]) {
		return p, usageError("%s: %q is not a valid method name", cmd, args[0])
	}
	p.method = args[0]
	if len(args) == 2 {
		if p.payload, err = readPayload(cmd, args[1], c.env.Stdin); err != nil {
			return p, err
		}
	}
	return p, nil
}

// parseStart reads --start: "" is now (the zero time), "+DURATION" that
// long after now (DURATION as parseDuration reads it), anything else an
// RFC 3339 time.
func parseStart(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "":
		return time.Time{}, nil
	case strings.HasPrefix(s, "+"):
		d, err := parseDuration(s[1:])
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("%q: want +DURATION such as +10m, +1h30m or +600 (seconds)", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time such as 2026-01-01T08:00:00Z, or +DURATION", s)
	}
	return t, nil
}

// show implements `methodd job show`.
func (c *jobCmd) show(ctx context.Context, args []string) error {
	return c.oneJob(ctx, "job show", args, func(cl *invoke.Client, id string) (invoke.Job, error) { return cl.GetJob(ctx, id) })
}

// cancel implements `methodd job cancel`.
func (c *jobCmd) cancel(ctx context.Context, args []string) error {
	return c.oneJob(ctx, "job cancel", args, func(cl *invoke.Client, id string) (invoke.Job, error) { return cl.CancelJob(ctx, id) })
}

// oneJob parses `ID` and -o, makes one request and prints the job.
func (c *jobCmd) oneJob(ctx context.Context, cmd string, args []string, do func(*invoke.Client, string) (invoke.Job, error)) error {
	var f jobFlags
	fs := c.flagSet(cmd, &f)
	fs.StringVar(&f.output, "o", "json", "output: json (one line) or pretty")
	id, err := parseJobID(cmd, fs, &f, args)
	if err != nil {
		return err
	}
	if f.output != "json" && f.output != "pretty" {
		return usageError("%s: -o %q: want json or pretty", cmd, f.output)
	}
	client, err := serviceClient(cmd, f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	job, err := do(client, id)
	if err != nil {
		return jobExit(err)
	}
	if job.Status == invoke.JobUnknown {
		return withExit(exitUnreachable, fmt.Errorf("%s: job %s not found (the hub answered status unknown)", cmd, id))
	}
	return printDocument(c.env.Stdout, cmd, "job", job.Raw, f.output)
}

// parseJobID parses args into fs with one positional ID and checks it.
func parseJobID(cmd string, fs *flag.FlagSet, f *jobFlags, args []string) (string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return "", err
	}
	if err := f.hub.check(cmd); err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usageError("%s: want one job ID, got %d arguments (-h for help)", cmd, len(pos))
	}
	if !invoke.ValidJobID(pos[0]) {
		return "", usageError("%s: %q is not a job id (1..%d letters, digits and '-')", cmd, pos[0], invoke.MaxJobIDLen)
	}
	return pos[0], nil
}

// jobTypes and jobStatuses are what list's filters accept.
var (
	jobTypes    = []string{invoke.JobTypeMethod, invoke.JobTypeTwin}
	jobStatuses = []string{invoke.JobQueued, invoke.JobScheduled, invoke.JobRunning, invoke.JobCompleted, invoke.JobFailed, invoke.JobCancelled}
)

// list implements `methodd job list`.
func (c *jobCmd) list(ctx context.Context, args []string) error {
	const cmd = "job list"
	var f jobFlags
	fs := c.flagSet(cmd, &f)
	fs.StringVar(&f.typ, "type", "", "only jobs of this type: "+strings.Join(jobTypes, " or "))
	fs.StringVar(&f.state, "status", "", "only jobs in this status: "+strings.Join(jobStatuses, ", "))
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError("%s: unexpected argument %q", cmd, pos[0])
	case f.typ != "" && !slices.Contains(jobTypes, f.typ):
		return usageError("%s: --type %q: want %s", cmd, f.typ, strings.Join(jobTypes, " or "))
	case f.state != "" && !slices.Contains(jobStatuses, f.state):
		return usageError("%s: --status %q: want one of %s", cmd, f.state, strings.Join(jobStatuses, ", "))
	}
	if err := f.hub.check(cmd); err != nil {
		return err
	}
	client, err := serviceClient(cmd, f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	jobs, err := client.ListJobs(ctx, f.typ, f.state)
	if err != nil {
		return jobExit(err)
	}
	for _, j := range jobs {
		if err := printDocument(c.env.Stdout, cmd, "job", j.Raw, "json"); err != nil {
			return err
		}
	}
	return nil
}

// results implements `methodd job results`.
func (c *jobCmd) results(ctx context.Context, args []string) error {
	const cmd = "job results"
	var f jobFlags
	fs := c.flagSet(cmd, &f)
	id, err := parseJobID(cmd, fs, &f, args)
	if err != nil {
		return err
	}
	client, err := serviceClient(cmd, f.hub, c.env.Getenv)
	if err != nil {
		return err
	}
	defer client.Close()
	job, err := client.GetJob(ctx, id)
	if err != nil {
		return jobExit(err)
	}
	return c.report(ctx, client, job)
}

// report prints the records of job as fan-out lines, sorted by device,
// and the summary on stderr; records of devices not finished yet are
// counted, not printed. The exit code is the fan-out's (see fanOut):
// 0 when every device replied 2xx, 5 when none answered and a hub error
// occurred, 1 otherwise; but a job that failed, was cancelled or has not
// ended never exits 0, a cancelled one exits 1, and one that failed
// without any device record exits 5.
func (c *jobCmd) report(ctx context.Context, client *invoke.Client, job invoke.Job) error {
	if job.Status == invoke.JobUnknown {
		return withExit(exitUnreachable, fmt.Errorf("job %s not found (the hub answered status unknown)", job.JobID))
	}
	recs, err := client.JobRecords(ctx, job.JobID)
	if err != nil {
		return jobExit(err)
	}
	var sum invoke.Summary
	unfinished := 0
	for _, r := range recs {
		if !r.Finished() {
			unfinished++
			continue
		}
		o := r.Outcome()
		sum.Add(o)
		if _, err := c.env.Stdout.Write(append(o.Line(), '\n')); err != nil {
			return withExit(exitFailure, fmt.Errorf("job results: write results: %w", err))
		}
	}
	fmt.Fprintf(c.env.Stderr, "methodd: job %s %s; %s\n", job.JobID, job.Status, sum.String())
	if unfinished > 0 {
		fmt.Fprintf(c.env.Stderr, "methodd: %d devices have not finished yet; run `methodd job results %s` again later\n", unfinished, job.JobID)
	}
	if reason := firstNonEmpty(job.FailureReason, job.StatusMessage); job.Status == invoke.JobFailed && reason != "" {
		fmt.Fprintf(c.env.Stderr, "methodd: job %s failed: %s\n", job.JobID, reason)
	}
	switch {
	case job.Status == invoke.JobFailed && len(recs) == 0:
		return withExit(exitHubError, errSilent)
	case job.Status == invoke.JobCancelled:
		return withExit(exitFailure, errSilent)
	case sum.Answered() == 0 && sum.Counts[invoke.KindError] > 0:
		return withExit(exitHubError, errSilent)
	case sum.Counts[invoke.KindOK] == sum.Total() && unfinished == 0 && job.Status == invoke.JobCompleted:
		return nil
	default:
		return withExit(exitFailure, errSilent)
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// wait polls job id every c.poll until it ends, drawing its statistics on
// stderr when that is a terminal, then reports its results. When ctx ends
// it stops waiting, says how to follow the job, and exits 1; the job is
// not cancelled.
func (c *jobCmd) wait(ctx context.Context, client *invoke.Client, id string) error {
	every := c.poll
	if every <= 0 {
		every = defaultJobPoll
	}
	bar := newJobProgress(c.env.Stderr)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		job, err := client.GetJob(ctx, id)
		if ctx.Err() != nil {
			bar.clear()
			return c.interrupted(id)
		}
		if err != nil {
			bar.clear()
			return jobExit(fmt.Errorf("%w; the job may still run: `methodd job show %s`", err, id))
		}
		bar.draw(job)
		if job.Done() || job.Status == invoke.JobUnknown {
			bar.clear()
			return c.report(ctx, client, job)
		}
		select {
		case <-ctx.Done():
			bar.clear()
			return c.interrupted(id)
		case <-tick.C:
		}
	}
}

// interrupted is wait's answer to ctx's end.
func (c *jobCmd) interrupted(id string) error {
	return withExit(exitFailure, fmt.Errorf("job create: stopped waiting; job %s goes on: follow it with `methodd job show %s`, results with `methodd job results %s`, stop it with `methodd job cancel %s`", id, id, id, id))
}

// jobProgress draws "[#####.....] 512/1000 succeeded 500 failed 12
// running 3" on a terminal; on anything else it does nothing.
type jobProgress struct {
	w     io.Writer // nil when not a terminal
	shown bool
}

func newJobProgress(w io.Writer) *jobProgress {
	p := &jobProgress{}
	if isTerminal(w) {
		p.w = w
	}
	return p
}

// draw redraws the line from job's statistics (the status alone when it
// has none yet).
func (p *jobProgress) draw(job invoke.Job) {
	if p.w == nil {
		return
	}
	fmt.Fprint(p.w, "\r\033[K"+progressLine(job))
	p.shown = true
}

// progressLine renders job's progress (without a newline): a bar from its
// statistics, or its status while it has no devices counted yet.
func progressLine(job invoke.Job) string {
	s := job.Statistics
	if s == nil || s.DeviceCount == 0 {
		if job.Status == invoke.JobScheduled && job.StartTime != "" {
			return fmt.Sprintf("job %s scheduled to start at %s", job.JobID, job.StartTime)
		}
		return fmt.Sprintf("job %s %s", job.JobID, job.Status)
	}
	const width = 20
	done := s.SucceededCount + s.FailedCount
	fill := 0
	if s.DeviceCount > 0 {
		fill = min(width, width*done/s.DeviceCount)
	}
	return fmt.Sprintf("[%s%s] %d/%d succeeded %d failed %d running %d",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, s.DeviceCount, s.SucceededCount, s.FailedCount, s.RunningCount)
}

// clear erases the line so that other output starts on a clean line.
func (p *jobProgress) clear() {
	if p.w == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	p.shown = false
}

// clock is the command's clock.
func (c *jobCmd) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// jobExit maps an error of the jobs client to the exit code (see
// jobUsage): 3 for a job not found (404); 2 for an input the client or the
// hub (400, 409, 413) refused; 5 for everything else.
func jobExit(err error) error {
	var he *iothub.Error
	switch {
	case errors.As(err, &he) && he.HTTPStatus == http.StatusNotFound:
		return withExit(exitUnreachable, err)
	case errors.Is(err, invoke.ErrJob):
		return withExit(exitUsage, err)
	case errors.As(err, &he) && (he.HTTPStatus == http.StatusBadRequest || he.HTTPStatus == http.StatusConflict || he.HTTPStatus == http.StatusRequestEntityTooLarge):
		return withExit(exitUsage, err)
	default:
		return withExit(exitHubError, err)
	}
}
