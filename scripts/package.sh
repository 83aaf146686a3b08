#!/usr/bin/env bash
# Builds methodd's release artefacts: static binaries for every target, then
# Debian packages (.deb, with nfpm) for the linux ones, and SHA256SUMS.
#
#   scripts/package.sh [--version V] [--out DIR] [--targets LIST]
#
#   --version V     Debian-valid package version. Default: from
#                   `git describe --tags --always --dirty`:
#                     v1.2.3 (on the tag)       -> 1.2.3
#                     v1.3.0-rc1                -> 1.3.0~rc1
#                     v1.2.3-4-gabc1234         -> 1.2.3+git20261129.4.abc1234
#                     abc1234 (no tag yet)      -> 0.0.0~git20261129.abc1234
#                   with ".dirty" (on a tag: "+dirty") appended for uncommitted
#                   changes; the date is
#                   the commit's (UTC), so a rebuild gives the same version and
#                   later commits sort higher.
#   --out DIR       output directory (default: dist/, git-ignored). Created;
#                   files of the same names are replaced.
#   --targets LIST  comma-separated GOOS/GOARCH list (default: all of
#                   linux/amd64,linux/arm64,linux/arm,darwin/amd64,darwin/arm64,
#                   windows/amd64; also $METHODD_TARGETS). linux/arm is ARMv7
#                   (GOARM=7, Debian armhf). A .deb is built for each linux one.
#
# Output in DIR: methodd_<V>_<os>_<arch>[.exe] (armv7 for linux/arm),
# methodd_<V>_<debarch>.deb, SHA256SUMS over all of them. Binaries are static
# (CGO_ENABLED=0), -trimpath, stripped (-s -w: a third smaller; Go's panics
# keep their stack traces), stamped with the git commit (-buildvcs=auto, which
# overrides a GOFLAGS=-buildvcs=false: `methodd version` names the commit). Files in the .deb get the commit's time as mtime
# (SOURCE_DATE_EPOCH), so the same commit packs to the same bytes.
# They are built without net/http's HTTP/2 (-tags nethttpomithttp2): nothing
# in methodd speaks it (MQTT, and IoT Hub's REST API over HTTP/1.1), and it
# is 565 KB of the binary that every daemon maps (docs/benchmarks).
#
# Needs only Go: nfpm is run from the Go module proxy at a pinned version
# (`go run ...@version`), it is not a dependency in go.mod. Any failed build
# or packaging step stops the script with a non-zero status.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
ALL_TARGETS=linux/amd64,linux/arm64,linux/arm,darwin/amd64,darwin/arm64,windows/amd64
MAINTAINER=${METHODD_MAINTAINER:-"methodd maintainers <maintainers@users.noreply.r-seed-5d4d23f9.example>"}

die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }

version= out=dist targets=${METHODD_TARGETS:-$ALL_TARGETS}
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --targets) targets=${2:?--targets needs a value}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

# tilde: a tag's pre-release part sorts before the release (1.2.3-rc1 ->
# 1.2.3~rc1), as in Debian; a "-" would start a Debian revision.
tilde() { printf '%s' "${1//-/\~}"; }

# debian_version turns `git describe --tags --always --dirty` into a Debian
# version (digits first; ~ sorts before, + after the release it follows).
debian_version() {
  local desc date dirty=
  desc=$(git describe --tags --always --dirty) || die "git describe failed: not a git checkout? use --version"
  date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d)
  case "$desc" in *-dirty) dirty=.dirty; desc=${desc%-dirty} ;; esac
  if [[ $desc =~ ^v?([0-9]+[.][0-9A-Za-z.-]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
    printf '%s+git%s.%s.%s%s\n' "$(tilde "${BASH_REMATCH[1]}")" "$date" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "$dirty"
  elif [[ $desc =~ ^v?([0-9]+[.][0-9A-Za-z.-]*)$ ]]; then
    printf '%s%s\n' "$(tilde "${BASH_REMATCH[1]}")" "${dirty:++dirty}"
  elif [[ $desc =~ ^[0-9a-f]+$ ]]; then
    printf '0.0.0~git%s.%s%s\n' "$date" "$desc" "$dirty"
  else
    die "cannot make a Debian version of tag '$desc': use --version"
  fi
}

[ -n "$version" ] || version=$(debian_version)
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version '$version' is not a valid Debian version (no epoch or revision here)"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
TAGS=nethttpomithttp2 # as every shipped build: see the header

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build GOOS GOARCH DEST: one static binary; fails the script on error.
build() {
  local goarm=
  [ "$2" = arm ] && goarm=7
  printf '==> go build %s/%s%s -> %s\n' "$1" "$2" "${goarm:+ (GOARM=$goarm)}" "${3#"$out"/}"
  CGO_ENABLED=0 GOOS=$1 GOARCH=$2 GOARM=$goarm \
    go build -trimpath -buildvcs=auto -tags "$TAGS" -ldflags='-s -w' -o "$3" . || die "build of $1/$2 failed"
}

# stage: the generated files every .deb ships, made by a binary for this
# host: completions, the schema, the unit with packaged paths, changelog.
stage() {
  local s=$work/stage host=$work/methodd-host
  mkdir -p "$s"
  CGO_ENABLED=0 go build -trimpath -tags "$TAGS" -o "$host" . || die "build for this host failed"
  for sh in bash zsh fish; do
    "$host" completion "$sh" >"$s/completion.$sh" || die "methodd completion $sh failed"
    [ -s "$s/completion.$sh" ] || die "methodd completion $sh printed nothing"
  done
  "$host" check --print-schema >"$s/handlers.schema.json" || die "methodd check --print-schema failed"
  [ -s "$s/handlers.schema.json" ] || die "methodd check --print-schema printed nothing"
  packaged_unit systemd/methodd.service >"$s/methodd.service"
  changelog | gzip -9n >"$s/changelog.gz"
}

# packaged_unit UNIT: the repository's unit (written for a hand install under
# /usr/local) with the package's paths. Fails if a rewritten line is missing
# or any /usr/local path is left, so an edited unit cannot slip through.
packaged_unit() {
  local exec='^ExecStart=/usr/local/bin/methodd ' doc='^Documentation=file:/usr/local/share/doc/methodd/'
  grep -q "$exec" "$1" || die "$1: no line matching '$exec' to rewrite"
  grep -q "$doc" "$1" || die "$1: no line matching '$doc' to rewrite"
  sed -e "s#$exec#ExecStart=/usr/bin/methodd #" \
      -e "s#$doc#Documentation=file:/usr/share/doc/methodd/#" "$1" >"$work/unit"
  if grep -n '/usr/local' "$work/unit" >&2; then die "$1: /usr/local left after the rewrite (above)"; fi
  cat "$work/unit"
}

# changelog: the Debian changelog of a package built from git (one entry).
changelog() {
  printf 'methodd (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Built from git %s. The changes are in the project'"'"'s git history.\n\n' \
    "$(git describe --tags --always --dirty 2>/dev/null || echo unknown)"
  printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
}

# deb GOARCH BIN: the .deb for one linux binary.
deb() {
  local debarch
  case "$1" in
    amd64) debarch=amd64 ;; arm64) debarch=arm64 ;; arm) debarch=armhf ;;
    *) die "no Debian architecture for linux/$1" ;;
  esac
  printf '==> nfpm deb %s -> methodd_%s_%s.deb\n' "$debarch" "$version" "$debarch"
  METHODD_DEB_ARCH=$debarch METHODD_VERSION=$version METHODD_BIN=$2 \
    METHODD_STAGE=$work/stage METHODD_MAINTAINER=$MAINTAINER \
    go run "$NFPM" package --config packaging/nfpm.yaml --packager deb \
    --target "$out/methodd_${version}_${debarch}.deb" >/dev/null || die "nfpm for $debarch failed"
}

artefacts=() debs=()
IFS=, read -ra list <<<"$targets"
for t in "${list[@]}"; do
  goos=${t%/*} goarch=${t#*/}
  [ -n "$goos" ] && [ -n "$goarch" ] && [ "$goos" != "$t" ] || die "target '$t' is not GOOS/GOARCH"
  name=methodd_${version}_${goos}_${goarch}
  [ "$goarch" = arm ] && name=methodd_${version}_${goos}_armv7
  [ "$goos" = windows ] && name=$name.exe
  build "$goos" "$goarch" "$out/$name"
  artefacts+=("$name")
  [ "$goos" = linux ] && debs+=("$goarch:$out/$name")
done

if [ ${#debs[@]} -gt 0 ]; then
  stage
  for d in "${debs[@]}"; do
    deb "${d%%:*}" "${d#*:}"
    a=${d%%:*}; [ "$a" = arm ] && a=armhf
    artefacts+=("methodd_${version}_${a}.deb")
  done
fi

(cd "$out" && sha256sum -- "${artefacts[@]}" >SHA256SUMS)
printf '==> %s: %s SHA256SUMS\n' "$out" "${artefacts[*]}"
