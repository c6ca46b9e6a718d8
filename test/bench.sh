#!/usr/bin/env bash
# Measures our hot paths beside raw baselines in the same run and prints one
# table with ratios. Each pair runs interleaved (baseline, ours, baseline,
# ours, ...) so drift in the machine's load hits both alike; figures are
# medians. These machines are noisy: compare ratios, not absolute figures.
#
#   COUNT=5 ./test/bench.sh     (runs per benchmark; default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/zmq.test" ./transport/zmq/
go test -c -o "$tmp/signing.test" ./signing/
go test -c -o "$tmp/root.test" .

# pair NAME BINARY BASELINE OURS BENCHTIME
# Prints "NAME<TAB>benchmark<TAB>msgs/s" for every run.
pair() {
  local name=$1 bin=$2 base=$3 ours=$4 benchtime=$5
  for _ in $(seq "$count"); do
    for b in "$base" "$ours"; do
      "$bin" -test.run '^$' -test.bench "^Benchmark${b}\$" -test.benchtime "$benchtime" |
        awk -v n="$name" -v b="$b" '/^Benchmark/ {
          v = ""
          for (i = 1; i < NF; i++) { if ($(i+1) == "msgs/s") v = $i; if ($(i+1) == "ns/op" && v == "") nsop = $i }
          if (v == "") v = 1e9 / nsop   # one message per op
          print n "\t" b "\t" v
        }'
    done
  done
}

# Each test binary runs in its package folder, where it finds the module
# root and ../shared/testdata as `go test` would.
{
  (cd transport/zmq && pair relay "$tmp/zmq.test" LibzmqProxy Relay 300000x)
  (cd signing && pair validate "$tmp/signing.test" RawRSAVerify Validate 3s)
  (cd . && pair signing-relay "$tmp/root.test" RawRSASignAllCores SigningRelay 4000x)
} > "$tmp/results.tsv"

awk -F'\t' '
  { key = $1 SUBSEP $2; vals[key] = vals[key] " " $3; if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 }; names[$1] = names[$1] " " $2 }
  function median(s,   a, k, i, j, t) {
    k = split(s, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    label["relay", "LibzmqProxy"] = "libzmq zmq_proxy, same sockets"
    label["relay", "Relay"] = "fedmsg relay (checks every message)"
    label["validate", "RawRSAVerify"] = "raw RSA-2048 SHA-1 verify, one core"
    label["validate", "Validate"] = "fedmsg x509 validation, one core"
    label["signing-relay", "RawRSASignAllCores"] = "raw RSA-2048 SHA-1 sign, all cores"
    label["signing-relay", "SigningRelay"] = "fedmsg signing-relay, end to end"
    base["relay"] = "LibzmqProxy"; ours["relay"] = "Relay"
    base["validate"] = "RawRSAVerify"; ours["validate"] = "Validate"
    base["signing-relay"] = "RawRSASignAllCores"; ours["signing-relay"] = "SigningRelay"
    printf "%-40s %12s %8s\n", "path (median msgs/s)", "msgs/s", "ratio"
    for (i = 1; i <= n; i++) {
      p = order[i]
      b = median(vals[p, base[p]]); o = median(vals[p, ours[p]])
      printf "%-40s %12.0f\n", label[p, base[p]], b
      printf "%-40s %12.0f %8.2f\n", label[p, ours[p]], o, o / b
    }
  }' "$tmp/results.tsv"
