package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// argvWarning is printed once when a secret is given on the command line.
const argvWarning = "warning: --connection-string puts the hub's key in this command line, which other local users can read " +
	"(ps, /proc/*/cmdline); use --connection-string-file FILE or $IOTHUB_CONNECTION_STRING instead\n"

// addHubFlags registers the hub flags (serviceFlags.add) plus
// --connection-string-file, which reads h.connectionString from a file, and
// makes --connection-string warn on w that argv is visible. Giving both is
// a usage error at parse time.
func addHubFlags(fs *flag.FlagSet, h *serviceFlags, w io.Writer) {
	h.add(fs)
	src := &csSource{h: h, w: w}
	if fl := fs.Lookup("connection-string"); fl != nil {
		src.inline = fl.Value
		fl.Value = csInline{src}
	}
	fs.Var(csFile{src}, "connection-string-file", "file holding the hub (service) connection string (not visible in ps, unlike --connection-string)")
}

// csSource tracks which of the two flags set the connection string.
type csSource struct {
	h      *serviceFlags
	w      io.Writer
	inline flag.Value // serviceFlags' own --connection-string
	from   string     // the flag that set it; "" = neither yet
}

func (s *csSource) claim(name string) error {
	if s.from != "" && s.from != name {
		return errors.New("--connection-string and --connection-string-file exclude each other")
	}
	s.from = name
	return nil
}

// csInline is --connection-string: as before, plus the warning.
type csInline struct{ s *csSource }

func (v csInline) String() string {
	if v.s == nil || v.s.inline == nil {
		return ""
	}
	return v.s.inline.String()
}

func (v csInline) Set(val string) error {
	if err := v.s.claim("connection-string"); err != nil {
		return err
	}
	fmt.Fprint(v.s.w, argvWarning)
	return v.s.inline.Set(val)
}

// csFile is --connection-string-file.
type csFile struct{ s *csSource }

func (v csFile) String() string { return "" }

func (v csFile) Set(path string) error {
	if err := v.s.claim("connection-string-file"); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cs := strings.TrimSpace(string(b))
	if cs == "" {
		return fmt.Errorf("%s is empty", path)
	}
	v.s.h.connectionString = cs
	return nil
}
