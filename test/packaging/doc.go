// Package packaging tests the Debian package that scripts/package.sh builds:
// it runs the script for linux/amd64, then checks the .deb with the real
// Debian tools (dpkg-deb for its contents and control data, lintian for
// policy), installs it with dpkg into a throwaway root, runs the installed
// binary, and removes and purges it again.
//
// The tools come from Debian's dpkg and lintian packages, which
// scripts/test.sh installs. Without them the tests fail, unless
// METHODD_PACKAGING_TOOLS_OPTIONAL=1 says they may be skipped.
package packaging
