#!/usr/bin/env bash
# The one test command, the README's and the only thing .ci/run runs: sets
# up what the tests need, runs every test with -race, checks the Prometheus
# rules with promtool, then fuzzes every fuzz target for a bounded time.
#
#   ./test.sh                     the whole suite, the rules, then the fuzzing
#   ./test.sh ./internal/cli/...  set-up, then go test -race with these
#                                 arguments instead of ./... (no rules, no
#                                 fuzzing)
#
# The set-up installs what is missing with apt-get (as root, or through
# sudo), and builds what must be built into the user's cache directory, one
# directory per name and version, so that a second run starts at once. What
# it cannot install stops it at once, naming the package and the reason: no
# test is skipped for want of a dependency.
set -euo pipefail
cd "$(dirname "$0")"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/mothership"

die() {
  echo "test.sh: $*" >&2
  exit 1
}

# phase NAME ends the running phase, printing how long it took, and starts
# NAME; on exit, failed or not, the last one is printed too.
phase_name=""
phase_start=0
phase() {
  if [ -n "$phase_name" ]; then
    local s=$((SECONDS - phase_start))
    echo "test.sh: $phase_name took $((s / 60))m$((s % 60))s"
  fi
  phase_name=$1
  phase_start=$SECONDS
}
trap 'phase ""' EXIT

# apt_install PACKAGE... installs Debian packages, as root or through sudo
# (sudo drops the environment, hence env), updating the lists once a run.
apt_updated=""
apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "$* is missing and there is no apt-get here to install it: install it with this machine's package manager"
  local sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 ||
      die "$* is missing and cannot be installed: not root and no sudo (as root: apt-get install $*)"
    sudo_cmd="sudo"
  fi
  echo "test.sh: installing $* with apt-get"
  if [ -z "$apt_updated" ]; then
    $sudo_cmd apt-get update -qq || die "$* is missing and apt-get update failed (above)"
    apt_updated=1
  fi
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    die "$* is missing and apt-get install $* failed (above)"
}

# cached NAME VERSION BUILD prints the directory "$cache/NAME-VERSION",
# calling BUILD DIR to fill it the first time; use it as
# dir=$(cached NAME VERSION build_NAME) (not in a condition, where set -e
# would not stop BUILD at its first failing step). BUILD's output goes to
# stderr. It fills a temporary directory that becomes that one only when it
# succeeded, so a failed or interrupted build is done again on the next run.
# Runs at once on one machine build once: the others wait on a lock (flock)
# and find the directory made.
cached() (
  set -e # bash clears it in $(...)
  dir="$cache/$1-$2"
  if [ ! -d "$dir" ]; then
    mkdir -p "$cache"
    exec 9>"$cache/.$1-$2.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
  fi
  if [ ! -d "$dir" ]; then
    echo "test.sh: building $1 $2 into $dir" >&2
    tmp=$(mktemp -d "$cache/.$1-$2.XXXXXX")
    what="$1 $2"
    trap 'rm -rf "$tmp"; [ -d "$dir" ] || echo "test.sh: the build of $what failed (above)" >&2' EXIT
    "$3" "$tmp" >&2
    mv -T "$tmp" "$dir"
  fi
  echo "$dir"
)

# One function a dependency: each checks, and installs only what is
# missing, or builds it with cached.

need_go() {
  command -v go >/dev/null 2>&1 || die "go is missing: install Go (https://go.dev/dl), the version go.mod names or newer"
}

# -race needs cgo, which Go turns off where it finds no C compiler.
need_cc() {
  command -v "$(go env CC)" >/dev/null 2>&1 || apt_install gcc libc6-dev
  [ "$(go env CGO_ENABLED)" = 1 ] || die "cgo is off (CGO_ENABLED=$(go env CGO_ENABLED)) and -race needs it: unset CGO_ENABLED"
}

# The PostgreSQL tests start a private server themselves (pgtest): they need
# initdb and pg_ctl, on PATH or under /usr/lib/postgresql/*/bin.
need_postgresql() {
  { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 ||
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ||
    apt_install postgresql
}

# Some tests drive the brokers as an outside client would, with kcat
# (librdkafka).
need_kcat() {
  command -v kcat >/dev/null 2>&1 || apt_install kcat
}

# The alerting rules are checked and their unit tests run with promtool
# (Debian's prometheus package).
need_promtool() {
  command -v promtool >/dev/null 2>&1 || apt_install prometheus
}

# The console's tests drive a real browser: headless Chromium.
need_chromium() {
  command -v chromium >/dev/null 2>&1 || apt_install chromium
}

# go_module_tree MODULE VERSION SIBLINGS DIR copies MODULE@VERSION's source
# from the Go module proxy into DIR and makes it build on its own: such a
# module (kubernetes, etcd's server) replaces its sibling modules with
# directories of its repository that its module zip does not hold, so every
# replace to a local path is dropped and the sibling required at SIBLINGS,
# the version they were published at with it. Its go.work and vendor/ go
# too. Build in DIR with go_build_module.
go_module_tree() {
  local module=$1 version=$2 siblings=$3 dir=$4 src edits
  src=$(cd "$dir" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
    die "go mod download $module@$version gave no source directory"
  fi
  cp -R "$src/." "$dir/"
  chmod -R u+w "$dir"
  rm -rf "$dir/vendor" "$dir/go.work" "$dir/go.work.sum"
  # go.mod's replaces to ./ or ../, and what it requires, one per line as
  # "drop MODULE[@VERSION]" and "require MODULE".
  edits=$(awk '
    /^replace[[:space:]]*\($/ { block = "replace"; next }
    /^require[[:space:]]*\($/ { block = "require"; next }
    /^\)/ { block = ""; next }
    { line = $0; kind = block }
    kind == "" && $1 ~ /^(replace|require)$/ { kind = $1; sub(/^[[:space:]]*(replace|require)[[:space:]]+/, "", line) }
    kind == "replace" {
      n = split(line, f, /[[:space:]]+/); i = (f[1] == "" ? 2 : 1)
      if (f[i+1] == "=>" && f[i+2] ~ /^\.\.?\//) print "drop", f[i]
      else if (f[i+2] == "=>" && f[i+3] ~ /^\.\.?\//) print "drop", f[i] "@" f[i+1]
    }
    kind == "require" { n = split(line, f, /[[:space:]]+/); i = (f[1] == "" ? 2 : 1); if (f[i] != "") print "require", f[i] }
  ' "$dir/go.mod")
  local args=() kind m
  while read -r kind m; do
    [ "$kind" = drop ] || continue
    args+=("-dropreplace=$m")
    m=${m%@*}
    if grep -qx "require $m" <<<"$edits"; then
      args+=("-require=$m@$siblings")
    fi
  done <<<"$edits"
  [ ${#args[@]} -gt 0 ] || die "$module@$version replaces no module with a local path: go_module_tree's assumption no longer holds"
  (cd "$dir" && GOWORK=off go mod edit "${args[@]}")
}

# go_build_module DIR PACKAGE OUT [GO BUILD FLAGS...] builds PACKAGE of the
# module tree in DIR, static and stripped.
go_build_module() {
  local dir=$1 pkg=$2 out=$3
  shift 3
  (cd "$dir" && GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
    go build -trimpath -ldflags "-s -w $*" -o "$out" "$pkg")
}

# The Kubernetes driver's tests run a real kube-apiserver and etcd through
# controller-runtime's envtest (internal/satellite/kubernetes/kubetest),
# which finds both in $KUBEBUILDER_ASSETS. They are built from their Go
# modules (no release binary can be downloaded here): kube-apiserver takes
# about 9 minutes of 2 cores and 3 GB of Go build cache, once a machine.
kube_version=v1.37.2 # k8s.io/kubernetes
kube_staging=v0.37.2 # its k8s.io/* modules, the release go.mod requires too
etcd_version=v3.7.3  # go.etcd.io/etcd/server/v3

build_kube_apiserver() {
  local out=$1 src
  echo "test.sh: building kube-apiserver $kube_version from k8s.io/kubernetes; the first time takes about 9 minutes"
  src=$out/.src # in cached's directory, which goes if the build fails
  mkdir "$src"
  go_module_tree k8s.io/kubernetes "$kube_version" "$kube_staging" "$src"
  local minor=${kube_version#v1.}
  minor=${minor%%.*}
  local v=k8s.io/component-base/version
  go_build_module "$src" ./cmd/kube-apiserver "$out/kube-apiserver" \
    "-X $v.gitVersion=$kube_version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  rm -rf "$src"
  "$out/kube-apiserver" --version
}

build_etcd() {
  local out=$1 src
  echo "test.sh: building etcd $etcd_version from go.etcd.io/etcd/server/v3"
  src=$out/.src
  mkdir "$src"
  go_module_tree go.etcd.io/etcd/server/v3 "$etcd_version" "$etcd_version" "$src"
  go_build_module "$src" . "$out/etcd"
  rm -rf "$src"
  "$out/etcd" --version
}

# Both in one directory, as envtest wants them: links to the two builds.
link_envtest_assets() {
  ln -s "$apiserver_dir/kube-apiserver" "$1/kube-apiserver"
  ln -s "$etcd_dir/etcd" "$1/etcd"
}

need_kube_apiserver() {
  apiserver_dir=$(cached kube-apiserver "$kube_version" build_kube_apiserver)
  etcd_dir=$(cached etcd "$etcd_version" build_etcd)
  KUBEBUILDER_ASSETS=$(cached envtest "kube-apiserver-$kube_version-etcd-$etcd_version" link_envtest_assets)
  export KUBEBUILDER_ASSETS
}

phase set-up
need_go
need_cc
need_postgresql
need_kcat
need_promtool
need_chromium
need_kube_apiserver

phase tests
go version
go test -race -timeout 15m "${@:-./...}"
[ $# -eq 0 ] || exit 0
# The Prometheus rules of deploy/: valid, and alerting as their tests say.
(cd deploy/prometheus && promtool check rules alerts.yaml && promtool test rules alerts_test.yaml)

phase fuzzing
# Every fuzz target of the module then fuzzes for a bounded time. `go test
# -list` names them, each package's names before its "ok" line, so a new
# target is picked up; -fuzz takes one target of one package at a time.
fuzz_targets=$(go test -list '^Fuzz' ./... | awk '/^Fuzz/ { names[n++] = $1 } /^ok / { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }')
#
# Go's fuzzing coordinator can fail a run at the -fuzztime deadline with a
# bare "context deadline exceeded" and no failing input (a race in
# internal/fuzz between the deadline and its workers, seen on loaded 2-core
# machines). A failure that wrote a failing input to testdata/fuzz fails the
# run at once; one that wrote none is run once more, and fails if it fails
# again.
fuzz_one() {
  go test -run '^$' -fuzz "^${2}\$" -fuzztime 10s "$1" </dev/null
}
while read -r pkg name; do
  [ -n "$pkg" ] || continue
  corpus="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name"
  before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
  if ! fuzz_one "$pkg" "$name"; then
    after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
    if [ "$after" -gt "$before" ]; then
      echo "fuzz: $name found a failing input in $corpus" >&2
      exit 1
    fi
    echo "fuzz: $name failed without a failing input (Go's coordinator deadline race); running it once more" >&2
    fuzz_one "$pkg" "$name"
  fi
done <<<"$fuzz_targets"
