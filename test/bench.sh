#!/usr/bin/env bash
# Measures our relay beside libzmq's own zmq_proxy in the same run, on the
# same sockets and the same 609-byte envelope, and prints the ratio. The
# machines are noisy: compare ratios, not absolute figures.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
n=${N:-300000}
go test -c -o /tmp/gofedmsg-zmq-bench.test ./transport/zmq/
# Interleave the two so that drift in the machine's load hits both alike.
out=$(for _ in $(seq "$count"); do
  for b in LibzmqProxy Relay; do
    /tmp/gofedmsg-zmq-bench.test -test.run '^$' -test.bench "^Benchmark${b}\$" -test.benchtime "${n}x"
  done
done)
echo "$out" | grep -E '^Benchmark' >&2
echo "$out" | awk '
  /^Benchmark/ {
    name=$1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
    for (i = 1; i <= NF; i++) if ($(i+1) == "msgs/s") v = $i
    vals[name] = vals[name] " " v
  }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    r = median(vals["Relay"]); p = median(vals["LibzmqProxy"])
    printf "%-40s %12s\n", "path (609-byte envelope, HWM 0, median)", "msgs/s"
    printf "%-40s %12.0f\n", "libzmq zmq_proxy (raw baseline)", p
    printf "%-40s %12.0f\n", "fedmsg relay (checks every message)", r
    printf "%-40s %12.2f\n", "ratio relay / zmq_proxy", r / p
  }'
