#!/usr/bin/env bash
# The project's one test command (README.md, .ci/run). Installs what the
# tests need, then runs every check. Fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "install test tools"
# Node SDKs for the conformance suite: exact versions from the committed lock file.
if [ -f test/conformance/package-lock.json ]; then
  npm ci --prefix test/conformance --no-audit --no-fund --loglevel=error
fi
# Debian packages, installed when missing (one apt-get update for all):
# systemd-analyze verifies the shipped unit file, and its systemd-sysusers
# creates the user when test/packaging installs the .deb into a throwaway
# root; dpkg-deb, dpkg and lintian check that .deb (lintian: ~30 s here);
# zsh and fish run the generated completion scripts (~10 s).
apt_pkgs=()
command -v systemd-analyze >/dev/null 2>&1 || apt_pkgs+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || apt_pkgs+=(dpkg)
command -v lintian >/dev/null 2>&1 || apt_pkgs+=(lintian)
command -v zsh >/dev/null 2>&1 || apt_pkgs+=(zsh)    # the completion scripts run in real shells
command -v fish >/dev/null 2>&1 || apt_pkgs+=(fish)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

# staticcheck, pinned: a version that understands Go 1.26.
STATICCHECK_VERSION=v0.8.2
if ! "$(go env GOPATH)/bin/staticcheck" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
  go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi

# golangci-lint v2, pinned, built from the Go module proxy (~2.5 min once).
GOLANGCI_LINT_VERSION=v2.15.0
if ! "$(go env GOPATH)/bin/golangci-lint" version 2>/dev/null | grep -qF "version ${GOLANGCI_LINT_VERSION#v} "; then
  go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@${GOLANGCI_LINT_VERSION}"
fi

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

step "go vet"
go vet ./...

step "staticcheck"
"$(go env GOPATH)/bin/staticcheck" ./...

step "golangci-lint (.golangci.yml)"
"$(go env GOPATH)/bin/golangci-lint" run ./...

step "cross-compile every shipping target (build only)"
xdir=$(mktemp -d)
trap 'rm -rf "$xdir"' EXIT
for target in linux/amd64 linux/arm64 linux/arm darwin/amd64 darwin/arm64 windows/amd64; do
  GOOS=${target%/*} GOARCH=${target#*/} GOARM=7 CGO_ENABLED=0 go build -trimpath -tags nethttpomithttp2 -o "$xdir/methodd-${target/\//-}" . ||
    { echo "cross-build of $target failed" >&2; exit 1; }
done

step "go test -race (unit, integration, fuzz seed corpora)"
go test -race -count=1 -timeout 30m ./...

step "fuzz (short runs)"
# A count, not a duration: with a wall-clock -fuzztime, Go 1.26's fuzzing
# coordinator can report "context deadline exceeded" at the deadline on a
# loaded machine, with no failing input (golang/go#75804, fixed in Go 1.27).
# 50000 runs takes 1-20 s per target here (5 s gave the slowest ~16000).
# Every (package, target) pair: two packages may name a target alike.
while read -r pkg target; do
  go test -run='^$' -fuzz="^${target}\$" -fuzztime="${FUZZTIME:-50000x}" -timeout=5m "$pkg"
done < <(grep -rHoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' --exclude-dir=node_modules . |
  sed -E 's#^(.*)/[^/]+:func (Fuzz[A-Za-z0-9_]+)$#\1 \2#' | sort -u)
