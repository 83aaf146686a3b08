package twinquery

import (
	"errors"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		from Source
		cond bool // has a WHERE
	}{
		{"all devices", "SELECT * FROM devices", Devices, false},
		{"lower case", "select * from devices where deviceId = 'a' OR deviceId = 'b'", Devices, true},
		{"mixed case", "SeLeCt * FrOm DeViCeS wHeRe tags.site = 'a' aNd NoT status = 'disabled'", Devices, true},
		{"modules", "SELECT * FROM devices.modules WHERE moduleId = 'm'", Modules, true},
		{"jobs", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job 1'", Jobs, true},
		{"jobs upper", "SELECT * FROM DEVICES.JOBS WHERE DEVICES.JOBS.JOBID = 'x'", Jobs, true},
		{"spaces and newlines", "\n SELECT\t*\r\nFROM devices  WHERE  a=1 \n", Devices, true},
		{"double quotes", `SELECT * FROM devices WHERE tags.site = "a"`, Devices, true},
		{"escapes", `SELECT * FROM devices WHERE tags.s = 'it\'s \"q\" \\ \u00e9\ud83d\ude00'`, Devices, true},
		{"hex", "SELECT * FROM devices WHERE version = 0x1F", Devices, true},
		{"numbers", "SELECT * FROM devices WHERE a = -1.5e3 OR b >= 0 OR c < 1E-2 OR d <> -0x10", Devices, true},
		{"nested parens", "SELECT * FROM devices WHERE ((a = 1 OR (b = 2)) AND (((c = 3))))", Devices, true},
		{"in lists", "SELECT * FROM devices WHERE deviceId IN ['a', \"b\", 1, -2, true, null] AND x NIN []", Devices, true},
		{"is_defined", "SELECT * FROM devices WHERE is_defined(properties.desired.$version)", Devices, true},
		{"metadata path", "SELECT * FROM devices WHERE properties.reported.$metadata.$lastUpdated > '2024'", Devices, true},
		{"bare path", "SELECT * FROM devices WHERE capabilities.iotEdge", Devices, true},
		{"constant on the left", "SELECT * FROM devices WHERE 'a' = tags.site", Devices, true},
		{"not not", "SELECT * FROM devices WHERE NOT NOT a = 1", Devices, true},
		{"undefined constant", "SELECT * FROM devices WHERE a = undefined", Devices, true},
		{"no space around operators", "SELECT * FROM devices WHERE a>=1 AND(b<>'x')OR'y'=c", Devices, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if q.From != tt.from {
				t.Errorf("From = %d, want %d", q.From, tt.from)
			}
			if got := q.Where() != nil; got != tt.cond {
				t.Errorf("has condition = %v, want %v", got, tt.cond)
			}
		})
	}
}

func TestParseStringEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`'plain'`, "plain"},
		{`"it's"`, "it's"},
		{`'it\'s'`, "it's"},
		{`"say \"hi\""`, `say "hi"`},
		{`'back\\slash'`, `back\slash`},
		{`'\u00e9t\u00C9'`, "étÉ"},
		{`'\ud83d\ude00'`, "😀"},
		{`'\ud83d'`, "\uFFFD"},
		{`'tab\tnl\n/\/'`, "tab\tnl\n//"},
		{`''`, ""},
	}
	for _, tt := range tests {
		c, err := ParseCondition("s = " + tt.in)
		if err != nil {
			t.Errorf("ParseCondition(s = %s): %v", tt.in, err)
			continue
		}
		doc := map[string]any{"s": tt.want}
		if !c.Match(doc) {
			t.Errorf("s = %s does not match %q", tt.in, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		pos  int
		msg  string
	}{
		{"empty", "", 0, "expected SELECT, found end of input"},
		{"no FROM", "SELECT * devices", 9, "expected FROM, found 'devices'"},
		{"bad source", "SELECT * FROM twins", 14, "expected devices, devices.modules or devices.jobs, found 'twins'"},
		{"bad sub-source", "SELECT * FROM devices.things", 22, "expected devices, devices.modules or devices.jobs, found 'things'"},
		{"junk after source", "SELECT * FROM devices deviceId = 'a'", 22, "expected WHERE or end of query, found 'deviceId'"},
		{"empty WHERE", "SELECT * FROM devices WHERE", 27, "expected a value, found end of input"},
		{"unterminated string", "SELECT * FROM devices WHERE a = 'abc", 32, "unterminated string"},
		{"unterminated escape", `SELECT * FROM devices WHERE a = 'abc\`, 32, "unterminated string"},
		{"bad escape", `SELECT * FROM devices WHERE a = 'a\qb'`, 34, `invalid escape \q in string`},
		{"short unicode escape", `SELECT * FROM devices WHERE a = '\u12'`, 33, `invalid \u escape: expected 4 hex digits`},
		{"stray close paren", "SELECT * FROM devices WHERE a = 1)", 33, "unexpected ')'"},
		{"unclosed paren", "SELECT * FROM devices WHERE (a = 1", 34, "expected ')', found end of input"},
		{"empty parens", "SELECT * FROM devices WHERE ()", 29, "expected a value, found ')'"},
		{"dangling AND", "SELECT * FROM devices WHERE a = 1 AND", 37, "expected a value, found end of input"},
		{"chained comparison", "SELECT * FROM devices WHERE a = 1 = 2", 34, "unexpected '='"},
		{"missing right operand", "SELECT * FROM devices WHERE a = ", 32, "expected a value, found end of input"},
		{"bad character", "SELECT * FROM devices WHERE a # 1", 30, "unexpected character '#'"},
		{"lone bang", "SELECT * FROM devices WHERE a ! 1", 30, "unexpected character '!'"},
		{"invalid utf-8", "SELECT * FROM devices WHERE a = \xff", 32, "invalid UTF-8 byte 0xff"},
		{"bad number", "SELECT * FROM devices WHERE a = 12ab", 32, `invalid number "12ab"`},
		{"bad hex", "SELECT * FROM devices WHERE a = 0x", 32, "invalid hex number: expected hex digits after 0x"},
		{"bad exponent", "SELECT * FROM devices WHERE a = 1e+", 32, "invalid number: expected digits in the exponent"},
		{"huge exponent", "SELECT * FROM devices WHERE a = 1e99999999999999999999", 32, "number 1e99999999999999999999 out of range"},
		{"dot then number", "SELECT * FROM devices WHERE properties.desired.69 = '69'", 47, "expected a property name after '.', found '69'"},
		{"IN without list", "SELECT * FROM devices WHERE a IN ('x')", 33, "expected '[' after IN, found '('"},
		{"IN with path", "SELECT * FROM devices WHERE a NIN [b]", 35, "expected a constant in the NIN list, found 'b'"},
		{"IN trailing comma", "SELECT * FROM devices WHERE a IN ['x',]", 38, "expected a constant in the IN list, found ']'"},
		{"IN unclosed", "SELECT * FROM devices WHERE a IN ['x' 'y']", 38, "expected ',' or ']', found a string"},
		{"array operand", "SELECT * FROM devices WHERE a = [1]", 32, "array constants are only supported after IN and NIN"},
		{"keyword as path", "SELECT * FROM devices WHERE AND = 1", 28, "expected a value, found 'AND'"},
		{"IS_DEFINED of constant", "SELECT * FROM devices WHERE IS_DEFINED('a')", 39, "expected a property path in IS_DEFINED(), found a string"},
		{"IS_DEFINED unclosed", "SELECT * FROM devices WHERE IS_DEFINED(a", 40, "expected ')', found end of input"},
		{"jobs twin path", "SELECT * FROM devices.jobs WHERE tags.site = 'a'", 33,
			"a devices.jobs query filters on devices.jobs.<field>; other conditions are not supported by this hub"},
		{"jobs no field", "SELECT * FROM devices.jobs WHERE devices.jobs = 'a'", 33,
			"a devices.jobs query filters on devices.jobs.<field>; other conditions are not supported by this hub"},
		{"too long", "SELECT * FROM devices WHERE a = '" + strings.Repeat("x", MaxLength) + "'", MaxLength, "query longer than 8192 bytes"},
		{"too deep", "SELECT * FROM devices WHERE " + strings.Repeat("(", 200) + "a" + strings.Repeat(")", 200), 28 + maxDepth,
			"condition nested deeper than 128 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSyntaxError(t, tt.in, parseErr(Parse(tt.in)), tt.pos, tt.msg)
		})
	}
}

func TestParseUnsupported(t *testing.T) {
	tests := []struct {
		name string
		in   string
		pos  int
		msg  string
	}{
		{"top", "SELECT TOP 10 * FROM devices", 7, "SELECT TOP is not supported by this hub"},
		{"projection", "SELECT deviceId FROM devices", 7, "a projection (only SELECT * is) is not supported by this hub"},
		{"count", "SELECT COUNT() AS n FROM devices", 7, "aggregate COUNT() is not supported by this hub"},
		{"group by", "SELECT * FROM devices GROUP BY tags.site", 22, "GROUP BY is not supported by this hub"},
		{"group by after where", "SELECT * FROM devices WHERE a = 1 GROUP BY a", 34, "GROUP BY is not supported by this hub"},
		{"order by", "select * from devices order by deviceId", 22, "ORDER BY is not supported by this hub"},
		{"plus", "SELECT * FROM devices WHERE a + 1 = 2", 30, "arithmetic ('+') is not supported by this hub"},
		{"times on right", "SELECT * FROM devices WHERE a = 2 * b", 34, "arithmetic ('*') is not supported by this hub"},
		{"binary minus", "SELECT * FROM devices WHERE a -1 = 0", 30, "arithmetic ('-') is not supported by this hub"},
		{"unary minus on path", "SELECT * FROM devices WHERE -a = 1", 28, "arithmetic ('-') is not supported by this hub"},
		{"modulo", "SELECT * FROM devices WHERE a % 2 = 0", 30, "arithmetic ('%') is not supported by this hub"},
		{"function", "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')", 28,
			"function STARTS_WITH() (only IS_DEFINED(path) is) is not supported by this hub"},
		{"aggregate in condition", "SELECT * FROM devices WHERE count() > 1", 28, "aggregate COUNT() is not supported by this hub"},
		{"not in", "SELECT * FROM devices WHERE a NOT IN ['x']", 30, "NOT IN (use NIN [...]) is not supported by this hub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSyntaxError(t, tt.in, parseErr(Parse(tt.in)), tt.pos, tt.msg)
		})
	}
}

func TestParseCondition(t *testing.T) {
	for _, in := range []string{"*", "  *\n", "\t* "} {
		c, err := ParseCondition(in)
		if err != nil {
			t.Fatalf("ParseCondition(%q): %v", in, err)
		}
		if !c.Match(map[string]any{}) || !c.Match(nil) {
			t.Errorf("ParseCondition(%q) does not match everything", in)
		}
	}
	c, err := ParseCondition("deviceId IN ['dev1','dev2']")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Match(map[string]any{"deviceId": "dev2"}) || c.Match(map[string]any{"deviceId": "dev3"}) {
		t.Error("deviceId IN ['dev1','dev2'] matches wrongly")
	}
}

func TestParseConditionErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		pos  int
		msg  string
	}{
		{"full query", "SELECT * FROM devices WHERE deviceId = 'a'", 0, "a job's queryCondition is the WHERE body only, not a SELECT query"},
		{"lower-case query", "select * from devices", 0, "a job's queryCondition is the WHERE body only, not a SELECT query"},
		{"empty", "", 0, "expected a condition, found end of input"},
		{"blank", "   ", 3, "expected a condition, found end of input"},
		{"star with more", "* AND a = 1", 0, "expected a value, found '*'"},
		{"trailing junk", "a = 1 b", 6, "unexpected 'b'"},
		{"WHERE keyword", "WHERE a = 1", 0, "expected a value, found 'WHERE'"},
		{"stray paren", "a = 1)", 5, "unexpected ')'"},
		{"too long", strings.Repeat(" ", MaxLength) + "*", MaxLength, "query longer than 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSyntaxError(t, tt.in, condErr(ParseCondition(tt.in)), tt.pos, tt.msg)
		})
	}
}

func parseErr(_ *Query, err error) error    { return err }
func condErr(_ *Condition, err error) error { return err }

// checkSyntaxError checks that err is a *SyntaxError with pos and msg.
func checkSyntaxError(t *testing.T, in string, err error, pos int, msg string) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("%q: got error %v, want a *SyntaxError", in, err)
	}
	if se.Pos != pos || se.Msg != msg {
		t.Errorf("%q:\ngot  pos %d %q\nwant pos %d %q", in, se.Pos, se.Msg, pos, msg)
	}
	if want := "syntax error at position"; !strings.HasPrefix(se.Error(), want) {
		t.Errorf("Error() = %q, want prefix %q", se.Error(), want)
	}
}
