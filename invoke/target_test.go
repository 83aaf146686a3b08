package invoke

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{"dev", Target{Device: "dev"}, false},
		{"dev/mod", Target{Device: "dev", Module: "mod"}, false},
		{"d-1:x.y+%_#*?!(),=@;$'", Target{Device: "d-1:x.y+%_#*?!(),=@;$'"}, false},
		{"", Target{}, true},
		{"/mod", Target{}, true},
		{"dev/", Target{}, true},
		{"a/b/c", Target{}, true},
		{"dev ice", Target{}, true},
		{"dev\t", Target{}, true},
		{strings.Repeat("x", 129), Target{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrTarget) {
			t.Errorf("ParseTarget(%q) error %v does not wrap ErrTarget", tt.in, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestReadTargets(t *testing.T) {
	got, err := ReadTargets(strings.NewReader("# fleet\n\ndev1\n  dev2/mod  \r\n#dev3\ndev1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{Device: "dev1"}, {Device: "dev2", Module: "mod"}, {Device: "dev1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	_, err = ReadTargets(strings.NewReader("ok\n\nbad/x/y\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("got %v, want an error naming line 3", err)
	}
}
