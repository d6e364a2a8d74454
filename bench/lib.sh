# Shared by the benchmark scripts (bench/run.sh, bench/handshake.sh, bench/ca_load.sh):
# sourced, not run.

# bench_certificates: in the current directory, a P-256 CA (ca.crt, ca.key) and a client
# and a server leaf with SPIFFE URI SANs (client.pem, server.pem: certificate and key),
# made by the openssl CLI, so nothing of tandem's own code is in the setup it measures.
bench_certificates() {
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj "/O=bench/CN=bench root" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -out ca.crt 2>/dev/null
  local who
  for who in client server; do
    openssl ecparam -name prime256v1 -genkey -noout -out $who.ec 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in $who.ec -out $who.key
    openssl req -new -key $who.key -subj "/O=bench" -out $who.csr \
      -addext "subjectAltName=critical,URI:spiffe://cluster.local/ns/bench/sa/$who" 2>/dev/null
    openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -copy_extensions copy -extfile <(printf "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature") \
      -out $who.crt 2>/dev/null
    cat $who.crt $who.key >$who.pem
  done
}

# wait_listen PORT: bounded wait until something listens on 127.0.0.1:PORT.
wait_listen() {
  for _ in $(seq 100); do
    [[ -n "$(ss -Hltn "sport = :$1")" ]] && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): nothing listens on port $1" >&2
  return 1
}

# A process's CPU so far (utime+stime), in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# field NAME: NAME's number out of "NAME=VALUE" text on stdin.
field() { grep -o "$1=[0-9.]*" | cut -d= -f2; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "n/a")}'; }

# The samples of a run by key: `add KEY VALUE` records one, `m KEY` is their median,
# `all KEY` every one in order, /-separated.
declare -A R
add() { R[$1]+="$2 "; }
m() { tr ' ' '\n' <<<"${R[$1]:-}" | sed '/^$/d' | median; }
all() { tr ' ' '\n' <<<"${R[$1]:-}" | sed '/^$/d' | paste -sd/ -; }

# replace_results_section NAME SECTION_FILE RESULTS_FILE: SECTION_FILE (which begins
# with a line "<!-- NAME..." and ends with "<!-- /NAME -->") takes the place of
# RESULTS_FILE's section NAME, or is appended to it; the rest of RESULTS_FILE stays.
replace_results_section() {
  local name="$1" section="$2" results="$3"
  if [[ -f $results ]] && grep -q "^<!-- $name" "$results"; then
    awk -v new="$section" -v start="^<!-- $name" -v end="^<!-- /$name -->" '
      $0 ~ start { while ((getline line < new) > 0) print line; skip = 1; next }
      $0 ~ end { skip = 0; next }
      !skip { print }' "$results" >"$results.new" && mv "$results.new" "$results"
  else
    { [[ -s $results ]] && echo; cat "$section"; } >>"$results"
  fi
}
