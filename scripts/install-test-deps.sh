#!/usr/bin/env bash
# Real parts for the tests: Debian's Prometheus (prometheus, promtool), Alertmanager, Pushgateway
# and VictoriaMetrics (the second backend); the lab's real tunnelling tools (iodine, dns2tcp), its
# resolver (dnsmasq), its capture (tshark) and `ip` for network namespaces (tests/lab).
set -euo pipefail
missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || missing+=(prometheus-alertmanager)
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v iodine >/dev/null && command -v iodined >/dev/null || missing+=(iodine)
command -v dns2tcpc >/dev/null && command -v dns2tcpd >/dev/null || missing+=(dns2tcp)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v tshark >/dev/null || missing+=(tshark)
command -v ip >/dev/null || missing+=(iproute2)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture: no (the lab captures as root).
echo "wireshark-common wireshark-common/install-setuid boolean false" \
  | $sudo debconf-set-selections 2>/dev/null || true
$sudo apt-get update -qq
# A policy-rc.d keeps the packages from starting their own daemons (the tests start their own);
# one that was already there is left alone.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  made_policy=1
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -n "$made_policy" ] && $sudo rm -f /usr/sbin/policy-rc.d
exit 0
