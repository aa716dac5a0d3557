#!/usr/bin/env bash
# kcat (librdkafka) checks against $BOOTSTRAP. Prints PASS/FAIL lines.
set -uo pipefail
B="${BOOTSTRAP:?BOOTSTRAP must be set (host:port)}"
T="${KCAT_TIMEOUT:-15}"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
S=$RANDOM

pass() { echo "PASS kcat: $*"; }
fail() { echo "FAIL kcat: $*"; }
# why FILE: the first librdkafka error in a stderr capture, for FAIL lines.
why() { grep -E 'did not reach|ERROR|PROTOERR|invalid|failed|%[0-3]\|' "$1" | sed -E 's/^%[0-9]\|[0-9.]+\|//; s/\[thrd:[^]]*\]: //' | awk '!seen[$0]++' | head -3 | tr '\n' ' ' | cut -c1-400; }
# consume TOPIC OUTFILE ARGS...: kcat -C ... -e with a time limit.
consume() {
	local topic="$1" out="$2"; shift 2
	timeout "$T" kcat -b "$B" -C -t "$topic" -e "$@" >"$out" 2>"$out.err"
	local rc=$?
	if [ "$rc" = 124 ]; then echo "kcat -C -e did not reach end of partition within ${T}s;" >>"$out.err"; fi
	return "$rc"
}

# 1. Metadata listing.
topic="kcat-meta-$S"
echo x | timeout "$T" kcat -b "$B" -P -t "$topic" 2>"$TMP/meta.err"
if timeout "$T" kcat -b "$B" -L >"$TMP/meta" 2>>"$TMP/meta.err" &&
	grep -q "broker 1 at $B" "$TMP/meta" && grep -q "topic \"$topic\" with 1 partitions" "$TMP/meta" &&
	grep -q "partition 0, leader 1, replicas: 1, isrs: 1" "$TMP/meta"; then
	pass "-L lists broker 1 at $B and auto-created topic $topic (1 partition, leader 1, isr 1)"
else
	fail "-L metadata listing missing broker/topic: $(head -c 300 "$TMP/meta" | tr '\n' ' ') $(why "$TMP/meta.err")"
fi

# 2. Keyed produce with headers, exact round trip.
topic="kcat-keys-$S"
printf 'k1:v1\nk2:hello world\nk3:\n' >"$TMP/in"
printf 'k1 v1 h1=x,h2=y\nk2 hello world h1=x,h2=y\nk3  h1=x,h2=y\n' >"$TMP/want"
if timeout "$T" kcat -b "$B" -P -t "$topic" -K: -H h1=x -H h2=y <"$TMP/in" 2>"$TMP/keys.err" &&
	consume "$topic" "$TMP/keys.out" -f '%k %s %h\n' && cmp -s "$TMP/want" "$TMP/keys.out"; then
	pass "keyed produce with headers (-K: -H) round trips key, value and headers exactly (3 records)"
else
	fail "keyed+headers round trip: $(cmp -s "$TMP/want" "$TMP/keys.out" && echo "content matched but") got '$(head -c 200 "$TMP/keys.out" 2>/dev/null | tr '\n' '|')' want '$(tr '\n' '|' <"$TMP/want")' $(why "$TMP/keys.out.err") $(why "$TMP/keys.err")"
fi

# 3. Every codec.
seq 1 200 | sed 's/$/ lorem ipsum dolor sit amet/' >"$TMP/codec.in"
for z in gzip snappy lz4 zstd; do
	topic="kcat-$z-$S"
	if timeout "$T" kcat -b "$B" -P -t "$topic" -z "$z" <"$TMP/codec.in" 2>"$TMP/$z.err" &&
		consume "$topic" "$TMP/$z.out" -f '%s\n' && cmp -s "$TMP/codec.in" "$TMP/$z.out"; then
		pass "-z $z produce + consume round trips 200 records exactly"
	else
		fail "-z $z round trip: $(cmp -s "$TMP/codec.in" "$TMP/$z.out" && echo "content matched but") got $(wc -l <"$TMP/$z.out" 2>/dev/null || echo 0) of 200 records $(why "$TMP/$z.out.err") $(why "$TMP/$z.err")"
	fi
done

# 4. Consume from an offset.
topic="kcat-off-$S"
printf 'a\nb\nc\nd\ne\n' | timeout "$T" kcat -b "$B" -P -t "$topic" 2>"$TMP/off.err"
printf '2 c\n3 d\n4 e\n' >"$TMP/off.want"
if consume "$topic" "$TMP/off.out" -o 2 -f '%o %s\n' && cmp -s "$TMP/off.want" "$TMP/off.out"; then
	pass "-o 2 starts at offset 2 (records c,d,e with offsets 2..4)"
else
	fail "-o 2: $(cmp -s "$TMP/off.want" "$TMP/off.out" && echo "content matched but") got '$(tr '\n' '|' <"$TMP/off.out" 2>/dev/null)' want '2 c|3 d|4 e|' $(why "$TMP/off.out.err") $(why "$TMP/off.err")"
fi

# 5. Consume from a timestamp.
topic="kcat-ts-$S"
printf 'old1\nold2\n' | timeout "$T" kcat -b "$B" -P -t "$topic" 2>"$TMP/ts.err"
sleep 0.3
ms=$(date +%s%3N)
sleep 0.3
printf 'new1\nnew2\n' | timeout "$T" kcat -b "$B" -P -t "$topic" 2>>"$TMP/ts.err"
printf '2 new1\n3 new2\n' >"$TMP/ts.want"
if consume "$topic" "$TMP/ts.out" -o "s@$ms" -f '%o %s\n' && cmp -s "$TMP/ts.want" "$TMP/ts.out"; then
	pass "-o s@<ms> starts at the first record with timestamp >= ms (offset 2)"
else
	fail "-o s@$ms: $(cmp -s "$TMP/ts.want" "$TMP/ts.out" && echo "content matched but") got '$(tr '\n' '|' <"$TMP/ts.out" 2>/dev/null)' want '2 new1|3 new2|' $(why "$TMP/ts.out.err") $(why "$TMP/ts.err")"
fi
