#!/usr/bin/env bash
# Sorts a bulk-transfer profile of a proxy pair into where the data path's cycles go:
# AES-GCM, kernel copies of socket data, the rest of the kernel (TCP/IP, system calls,
# loopback softirq), user-space copies, scheduling and wake-ups, malloc, epoll, the
# proxy's own code. Flat profile (self time per symbol): needs no call chains.
#   perf record -e cpu-clock -F 2000 -o FILE -p IN_PID,OUT_PID -- sleep 4  (during iperf3)
#   bench/data_path_profile.sh FILE
set -euo pipefail
perf report -i "${1:?usage: data_path_profile.sh PERF_DATA}" --no-children --sort dso,sym \
  --stdio -F overhead,dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' |
  awk '{
    share = $1; sub(/%/, "", share); dso = $2; sym = ""
    for (i = 4; i <= NF; i++) sym = sym " " $i
    kernel = dso ~ /kernel/
    c = kernel ? "kernel: TCP/IP, system calls, softirq, other" : "other user space (libc)"
    if (sym ~ /aes|gcm|GCM|AEAD|aead|ghash|CRYPTO_ctr|SSLAEADContext/ || dso ~ /libcrypto/)
      c = "crypto (AES-GCM)"
    if (!kernel && sym ~ /memmove|memcpy/) c = "user-space copies (memcpy)"
    if (kernel && sym ~ /_copy_to_iter|_copy_from_iter|copy_user|__pi_memcpy/)
      c = "kernel copies of socket data"
    if (!kernel && sym ~ /malloc|_int_free|cfree| free$|tcache/) c = "malloc/free"
    if (sym ~ /ep_|epoll/) c = "epoll"
    if (sym ~ /finish_task_switch|__schedule|try_to_wake_up|_raw_spin_unlock_irqrestore|select_task_rq|enqueue_task|dequeue_task|_raw_spin_unlock_irq$/)
      c = "scheduling, wake-ups, interrupt enable"
    if (dso ~ /haproxy|libssl/ || (dso !~ /^lib|kernel|vdso/ && c == "other user space (libc)"))
      c = "proxy code and TLS record layer"
    total[c] += share
  } END { for (c in total) printf "%6.1f%%  %s\n", total[c], c }' | sort -rn
