# Sourced by the install scripts: apt_install PACKAGE... (root or sudo; `apt-get update` once
# per run, under a lock so install scripts running side by side do not collide).
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {
  (
    flock 9
    stamp=${TMPDIR:-/tmp}/headless-client-apt-updated.$PPID
    if [ ! -e "$stamp" ] && [ -z "${HEADLESS_CLIENT_APT_UPDATED:-}" ]; then
      $SUDO apt-get update -qq
      touch "$stamp"
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  ) 9>"${TMPDIR:-/tmp}/headless-client-apt.lock"
}
