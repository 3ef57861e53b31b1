#!/bin/sh
# t0508: `helix profile` measures the bundled model for two node types into one profile
# directory; `helix plan` and `helix flow` accept the result (with the machine profiles it
# writes), and the planned flow is positive. Bad options fail with exit 2, a KV budget too
# small for one sequence with exit 1.
set -u
HELIX=${HELIX:-build/debug/helix}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$HELIX" profile --threads 1 --type big --kv-bytes 16e6 --out "$dir" --max-seconds 0.5 \
    > "$dir/out1" 2> "$dir/err1" || fail "profile big: $(cat "$dir/err1")"
grep -q 'decode 13/13' "$dir/err1" || fail "no progress on stderr"
"$HELIX" profile --threads 1 --type small --kv-bytes 2e6 --out "$dir" --max-seconds 0.5 --quiet \
    > "$dir/out2" 2>&1 || fail "profile small: $(cat "$dir/out2")"
ini=$dir/kjv-llama-6m.ini
[ "$(head -1 "$dir/out2")" = "$ini" ] || fail "printed '$(head -1 "$dir/out2")', want $ini"
grep -q '^\[gpu big\]' "$ini" && grep -q '^\[gpu small\]' "$ini" || fail "types not merged"
[ -s "$dir/profiles/kjv-llama-6m/small/decode_bs2time.csv" ] || fail "no decode csv"
# a 3-node cluster of these types, every pair linked
cat > "$dir/c.ini" <<'EOC'
[NodeNames]
total_compute_nodes=3
[SourceNode]
connected_nodes=[0, 1, 2]
[SinkNode]
connected_nodes=[0, 1, 2]
[ComputeNode-0]
type=big
connected_nodes=['source', 1, 2, 'sink']
[ComputeNode-1]
type=small
connected_nodes=['source', 0, 2, 'sink']
[ComputeNode-2]
type=small
connected_nodes=['source', 0, 1, 'sink']
EOC
for l in source-0 source-1 source-2 0-sink 1-sink 2-sink 0-1 0-2 1-2; do
    printf '[Link-%s]\nbandwidth=1000 * mbps\nlatency=1 * MilliSec\n' $l >> "$dir/c.ini"
done
"$HELIX" plan --model "$ini" --cluster "$dir/c.ini" --out "$dir/plan" --time-limit 2 \
    --machine-profiles "$dir/machine_profiles.ini" -q > "$dir/plan.out" 2>&1 || fail "plan: $(cat "$dir/plan.out")"
"$HELIX" flow --model "$ini" --cluster "$dir/c.ini" --layout "$dir/plan/placement.ini" \
    --machine-profiles "$dir/machine_profiles.ini" > "$dir/flow.out" 2>&1 || fail "flow: $(cat "$dir/flow.out")"
tput=$(awk '/^throughput/ {print $2}' "$dir/flow.out")
awk -v t="$tput" 'BEGIN { exit !(t > 0) }' || fail "flow throughput '$tput'"
# errors
"$HELIX" profile --threads 0 --out "$dir" >/dev/null 2>&1; [ $? -eq 2 ] || fail "--threads 0 not a usage error"
"$HELIX" profile --kv-bytes 4096 --out "$dir/x" --quiet >/dev/null 2>"$dir/e"; [ $? -eq 1 ] || fail "tiny KV accepted"
grep -q 'KV budget' "$dir/e" || fail "tiny KV message: $(cat "$dir/e")"
echo "ok: helix profile writes a profile that plan and flow accept ($tput tokens/s)"
