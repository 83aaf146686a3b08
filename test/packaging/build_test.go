package packaging

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// repoRoot is the repository's top directory, from this package's.
const repoRoot = "../.."

// built is what one run of scripts/package.sh produced.
type built struct {
	dir     string // the --out directory
	deb     string // path of the amd64 .deb
	binary  string // path of the linux/amd64 binary
	version string // the version in the file names
}

// debName matches the .deb's file name and captures its version.
var debName = regexp.MustCompile(`^methodd_([^_]+)_amd64\.deb$`)

// buildDeb runs scripts/package.sh --targets linux/amd64 into a temporary
// directory, with the default version (from git), and returns what it made.
func buildDeb(t *testing.T) built {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	b := built{dir: t.TempDir()}
	args := []string{"scripts/package.sh", "--targets", "linux/amd64", "--out", b.dir}
	if err := exec.Command("git", "-C", root, "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		// package.sh takes its version from git describe and refuses to
		// guess without it; a source tree without .git (a tarball) names it.
		t.Logf("not a git checkout (%v): building with --version 0.0.0~nogit", err)
		args = append(args, "--version", "0.0.0~nogit")
	}
	run(t, root, "bash", args...)
	debs, _ := filepath.Glob(filepath.Join(b.dir, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("package.sh made %d .deb files, want 1: %q", len(debs), debs)
	}
	m := debName.FindStringSubmatch(filepath.Base(debs[0]))
	if m == nil {
		t.Fatalf(".deb named %s, want methodd_<version>_amd64.deb", filepath.Base(debs[0]))
	}
	b.deb, b.version = debs[0], m[1]
	b.binary = filepath.Join(b.dir, "methodd_"+b.version+"_linux_amd64")
	return b
}
