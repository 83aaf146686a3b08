package packaging

import "testing"

// TestDebPackage builds the amd64 .deb once with scripts/package.sh and
// checks it: the artefacts and their checksums, the file list with modes
// and owners, the control fields, conffiles and maintainer scripts,
// lintian, and a real install, remove and purge with dpkg.
func TestDebPackage(t *testing.T) {
	requireTools(t, "dpkg-deb", "dpkg", "lintian", "sha256sum")
	b := buildDeb(t)
	t.Run("Artefacts", func(t *testing.T) { checkArtefacts(t, b) })
	t.Run("Contents", func(t *testing.T) { checkContents(t, b) })
	t.Run("Control", func(t *testing.T) { checkControl(t, b) })
	t.Run("MaintainerScripts", func(t *testing.T) { checkMaintainerScripts(t, b) })
	t.Run("Lintian", func(t *testing.T) { checkLintian(t, b) })
	t.Run("InstallRemovePurge", func(t *testing.T) { checkInstall(t, b) })
}
