#!/usr/bin/env bash
# Measures our hot paths beside raw baselines in the same run and prints one
# table with ratios. Each pair runs interleaved (baseline, ours, baseline,
# ours, ...) so drift in the machine's load hits both alike; figures are
# medians. These machines are noisy: compare ratios, not absolute figures.
# The broker pairs need the test brokers (test/brokers.sh, or make bench).
#
# The latency groups run one benchmark that measures both paths itself and
# print the median of each of its millisecond metrics (units ending -ms).
#
#   COUNT=5 ./test/bench.sh           (runs per benchmark; default 5)
#   ONLY=relay,amqp ./test/bench.sh   (only these groups)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
only=${ONLY:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# group | package | baseline benchmark | ours | -benchtime | baseline label | our label
pairs=(
  "relay|./transport/zmq|LibzmqProxy|Relay|300000x|libzmq zmq_proxy, same sockets|fedmsg relay (checks every message)"
  "validate|./signing|RawRSAVerify|Validate|3s|raw RSA-2048 SHA-1 verify, one core|fedmsg x509 validation, one core"
  "signing-relay|.|RawRSASignAllCores|SigningRelay|4000x|raw RSA-2048 SHA-1 sign, all cores|fedmsg signing-relay, end to end"
  "amqp|./transport/amqp|RawEndToEnd|EndToEnd|20000x|raw amqp091-go, confirms, RabbitMQ|AMQP transport, confirms, RabbitMQ"
  "stomp-rabbitmq|./transport/stomp|RawEndToEnd/RabbitMQ|EndToEnd/RabbitMQ/single|5x|raw go-stomp, receipts, RabbitMQ|STOMP transport, receipts, RabbitMQ"
  "stomp-activemq|./transport/stomp|RawEndToEnd/ActiveMQ|EndToEnd/ActiveMQ/single|5x|raw go-stomp, receipts, ActiveMQ|STOMP transport, receipts, ActiveMQ"
  "bridge-amqp|.|BridgeRawAMQP|BridgeAMQP|20000x|raw amqp091-go, async confirms, RabbitMQ|ZeroMQ -> fedmsg bridge -> AMQP, confirms"
  "bridge-activemq|.|BridgeRawActiveMQ|BridgeActiveMQ|20000x|raw go-stomp, receipts, ActiveMQ|ZeroMQ -> fedmsg bridge -> ActiveMQ STOMP"
)

# group | package | benchmark | -benchtime | label
latencies=(
  "bridge-latency|.|BridgeLatency|10000x|2k msg/s to RabbitMQ: raw amqp091-go, and ZeroMQ -> fedmsg bridge -> AMQP"
)

selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

# Build each package's test binary once.
declare -A built
for p in "${pairs[@]}" "${latencies[@]}"; do
  IFS='|' read -r group pkg _ <<<"$p"
  selected "$group" || continue
  [ -n "${built[$pkg]:-}" ] && continue
  bin="$tmp/$(echo "$pkg" | tr './' '__').test"
  go test -c -o "$bin" "$pkg"
  built[$pkg]=$bin
done

# run BINARY PKG NAME BENCHTIME: the benchmark's output.
run() {
  local bin=$1 pkg=$2 name=$3 benchtime=$4
  # A test binary runs in its package folder, where it finds the module
  # root and ../shared/testdata as `go test` would.
  (cd "$pkg" && "$bin" -test.run '^$' -test.bench "^Benchmark${name}\$" -test.benchtime "$benchtime")
}

# bench BINARY PKG NAME BENCHTIME: prints the run's msgs/s (or 1e9/ns/op).
bench() {
  run "$@" |
    awk '/^Benchmark/ {
      v = ""
      for (i = 1; i < NF; i++) { if ($(i+1) == "msgs/s") v = $i; if ($(i+1) == "ns/op") nsop = $i }
      if (v == "") v = 1e9 / nsop
      print v
    }'
}

for p in "${pairs[@]}"; do
  IFS='|' read -r group pkg base ours benchtime base_label our_label <<<"$p"
  selected "$group" || continue
  for _ in $(seq "$count"); do
    for b in "$base" "$ours"; do
      v=$(bench "${built[$pkg]}" "$pkg" "$b" "$benchtime")
      [ -n "$v" ] || { echo "bench: $pkg $b printed no result" >&2; exit 1; }
      if [ "$b" = "$base" ]; then role=base; label=$base_label; else role=ours; label=$our_label; fi
      printf '%s\t%s\t%s\t%s\n' "$group" "$role" "$label" "$v"
    done
  done
done >"$tmp/results.tsv"

# Latency groups: one line per millisecond metric of each run.
for p in "${latencies[@]}"; do
  IFS='|' read -r group pkg name benchtime label <<<"$p"
  selected "$group" || continue
  for _ in $(seq "$count"); do
    out=$(run "${built[$pkg]}" "$pkg" "$name" "$benchtime" | awk '/^Benchmark/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /-ms$/) print $(i+1) "\t" $i }')
    [ -n "$out" ] || { echo "bench: $pkg $name printed no latency" >&2; exit 1; }
    printf '%s\n' "$out" | while IFS=$'\t' read -r metric v; do printf '%s\t%s\t%s\t%s\n' "$group" "$label" "$metric" "$v"; done
  done
done >"$tmp/latency.tsv"

if [ -s "$tmp/results.tsv" ]; then
awk -F'\t' '
  { key = $1 SUBSEP $2; vals[key] = vals[key] " " $4; label[key] = $3; if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 }
    # Each "ours" run follows its baseline run: their ratio shows the noise.
    if ($2 == "base") last[$1] = $4; else ratios[$1] = ratios[$1] " " ($4 / last[$1]) }
  function median(s,   a, k, i, j, t) {
    k = split(s, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    printf "%-42s %10s %7s %s\n", "path (median msgs/s)", "msgs/s", "ratio", "  (range of the paired runs)"
    for (i = 1; i <= n; i++) {
      g = order[i]
      b = median(vals[g, "base"]); o = median(vals[g, "ours"])
      printf "%-42s %10.0f\n", label[g, "base"], b
      k = split(ratios[g], r, " "); lo = r[1]; hi = r[1]
      for (j = 2; j <= k; j++) { if (r[j] + 0 < lo + 0) lo = r[j]; if (r[j] + 0 > hi + 0) hi = r[j] }
      printf "%-42s %10.0f %7.2f   (%.2f-%.2f)\n", label[g, "ours"], o, o / b, lo, hi
    }
  }' "$tmp/results.tsv"
fi

if [ -s "$tmp/latency.tsv" ]; then
awk -F'\t' '
  { key = $1 SUBSEP $3; vals[key] = vals[key] " " $4; label[$1] = $2
    if (!($1 in seen)) { groups[++n] = $1; seen[$1] = 1 }
    if (!(key in mseen)) { metrics[$1] = metrics[$1] " " $3; mseen[key] = 1 } }
  function median(s,   a, k, i, j, t) {
    k = split(s, a, " ")
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  function lo(s,   a, k, i, m) { k = split(s, a, " "); m = a[1]; for (i = 2; i <= k; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
  function hi(s,   a, k, i, m) { k = split(s, a, " "); m = a[1]; for (i = 2; i <= k; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
  END {
    printf "\n%-42s %10s   %s\n", "latency (median ms)", "ms", "(range of the runs)"
    for (i = 1; i <= n; i++) {
      g = groups[i]
      print label[g]
      k = split(metrics[g], m, " ")
      for (j = 1; j <= k; j++) {
        v = vals[g, m[j]]
        printf "  %-40s %10.3f   (%.3f-%.3f)\n", m[j], median(v), lo(v), hi(v)
      }
    }
  }' "$tmp/latency.tsv"
fi
