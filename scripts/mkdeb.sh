#!/usr/bin/env bash
# scripts/mkdeb.sh BUILD_DIR OUT_DIR - the Debian packages of a built tree, with dpkg-deb
# from a staged `cmake --install` (no rebuild: `make deb` configures build-deb with the
# Debian paths and dpkg-buildflags hardening first; the package test runs this on the
# tree it already built). Three packages, as Debian splits a library:
#   libpigeon0      the shared library (SONAME libpigeon.so.0), ldconfig trigger, shlibs
#   libpigeon-dev   headers, pkg-config file, libpigeon.so link, static archive
#   pigeon          the command (libpigeon linked in statically: it uses internals the
#                   shared library keeps local), man pages, systemd units, the pigeon
#                   system user (sysusers.d), /usr/sbin/sendmail as an alternative
# Prints the paths of the .deb files it wrote. MKDEB_COMPRESSION: dpkg-deb -Z (default xz;
# the test uses none: xz on a sanitizer build takes most of a minute here).
set -eu
build=${1:?usage: scripts/mkdeb.sh BUILD_DIR OUT_DIR}
out=${2:?usage: scripts/mkdeb.sh BUILD_DIR OUT_DIR}
build=$(cd "$build" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
version=$(cache CMAKE_PROJECT_VERSION)
major=$(cache CMAKE_PROJECT_VERSION_MAJOR)
libdir=$(cache CMAKE_INSTALL_LIBDIR)
arch=$(dpkg --print-architecture)
maint="pigeon maintainers <pigeon@example.org>"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- stage the install and split it ----
DESTDIR="$work/stage" cmake --install "$build" --prefix /usr >/dev/null
st=$work/stage/usr
lib=$work/libpigeon$major
dev=$work/libpigeon-dev
cmd=$work/pigeon
for p in "$lib" "$dev" "$cmd"; do mkdir -p "$p/DEBIAN"; done
mkdir -p "$lib/usr/$libdir" "$dev/usr/$libdir" "$cmd/usr/bin"
mv "$st/$libdir"/libpigeon.so.* "$lib/usr/$libdir/"
mv "$st/$libdir"/libpigeon.so "$st/$libdir"/libpigeon.a "$st/$libdir/pkgconfig" "$dev/usr/$libdir/"
mkdir -p "$dev/usr/include" && mv "$st/include/pigeon" "$dev/usr/include/"
mv "$st/bin/pigeon" "$cmd/usr/bin/"
mkdir -p "$cmd/usr/share" && mv "$st/share/man" "$cmd/usr/share/"
# The sendmail alternative points at a link named sendmail: pigeon picks its mode from
# argv[0], which stays "sendmail" however the link is reached.
mkdir -p "$cmd/usr/libexec/pigeon"
ln -s ../../bin/pigeon "$cmd/usr/libexec/pigeon/sendmail"
install -D -m 644 "$src/contrib/systemd/pigeon-daemon.service" \
  "$cmd/lib/systemd/system/pigeon-daemon.service"
install -D -m 644 "$src/contrib/systemd/pigeon-serve.service" \
  "$cmd/lib/systemd/system/pigeon-serve.service"
install -D -m 644 "$src/contrib/systemd/pigeon.sysusers" "$cmd/usr/lib/sysusers.d/pigeon.conf"
left=$(cd "$st" && find . -type f -o -type l)
[[ -z $left ]] || { echo "mkdeb.sh: installed but not packaged: $left" >&2; exit 1; }

# ---- files Debian wants in every package ----
for p in "$lib" "$dev" "$cmd"; do
  name=$(basename "$p")
  doc=$p/usr/share/doc/$name
  mkdir -p "$doc"
  cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pigeon
Source: https://example.org/pigeon

Files: *
Copyright: 2026 pigeon maintainers
License: other
 The project has not declared a license yet (no LICENSE file in the tree): this
 text is to be replaced when it does. Until then all rights are reserved by the
 authors.
EOF
  printf 'pigeon (%s) unstable; urgency=medium\n\n  * Package built by make deb.\n\n -- %s  %s\n' \
    "$version" "$maint" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-0}")" |
    gzip -9n >"$doc/changelog.gz"
done
find "$cmd/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
# Binaries without their debugging symbols; the .a keeps its symbol table.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$cmd/usr/bin/pigeon" \
  "$lib/usr/$libdir"/libpigeon.so.*.*
strip --strip-debug --remove-section=.comment "$dev/usr/$libdir/libpigeon.a"
chmod 644 "$lib/usr/$libdir"/libpigeon.so.*.*

# ---- dependencies: dpkg-shlibdeps reads the binaries' NEEDED entries ----
mkdir -p "$work/src/debian"
printf 'Source: pigeon\n\nPackage: pigeon\nArchitecture: any\n' >"$work/src/debian/control"
shdeps() {
  (cd "$work/src" && dpkg-shlibdeps -O "${@/#/-e}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
}
# The libraries loaded on first use (lib/lazy: libpq, gumbo, cmark-gfm, c-ares, libidn2,
# OpenSSL, SQLite) are no NEEDED entry of ours: the build's pigeon_lazy_deps object (never installed) needs
# each of them, and stands for them here.
lazy=()
[[ -e $build/libpigeon_lazy_deps.so ]] && lazy=("$build/libpigeon_lazy_deps.so")
# Relative relocations packed as DT_RELR (CMakeLists.txt) need glibc 2.36: a version the
# binary requires (GLIBC_ABI_DT_RELR) with no symbol, which dpkg-shlibdeps does not count.
relr_floor() { # FILE < DEPENDS
  local deps
  deps=$(cat)
  if readelf -V "$1" 2>/dev/null | grep -q GLIBC_ABI_DT_RELR; then
    local have
    have=$(sed -n 's/.*libc6 (>= \([^)]*\)).*/\1/p' <<<"$deps")
    if [[ -n $have ]] && dpkg --compare-versions "$have" lt 2.36; then
      deps=${deps/libc6 (>= $have)/libc6 (>= 2.36)}
    fi
  fi
  printf '%s\n' "$deps"
}
dep_cmd=$(shdeps "$cmd/usr/bin/pigeon" "${lazy[@]}" | relr_floor "$cmd/usr/bin/pigeon")
solib=$(ls "$lib/usr/$libdir"/libpigeon.so.*.*)
dep_lib=$(shdeps "$solib" "${lazy[@]}" | relr_floor "$solib")

# ---- control files and maintainer scripts ----
size() { du -k -s --apparent-size "$1" --exclude=DEBIAN | cut -f1; }
control() { # DIR PACKAGE SECTION DEPENDS SUMMARY LONG [EXTRA]
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n' "$2" "$version" \
      "$arch" "$maint"
    printf 'Installed-Size: %s\n' "$(size "$1")"
    [[ -n $4 ]] && printf 'Depends: %s\n' "$4"
    [[ $# -ge 7 ]] && printf '%s\n' "$7"
    printf 'Section: %s\nPriority: optional\nHomepage: https://example.org/pigeon\n' "$3"
    printf 'Description: %s\n%s\n' "$5" "$6"
  } >"$1/DEBIAN/control"
}
# libsodium signs Ed25519 DKIM faster when present (lib/dkim/dkim_ed25519.c opens it by
# its SONAME); OpenSSL signs without it, so it is recommended, not required.
control "$lib" "libpigeon$major" libs "$dep_lib" "email-sending toolkit - shared library" \
  " libpigeon composes correct MIME messages and delivers them over SMTP with
 verified TLS, with a durable SQLite queue.
 .
 This package holds the shared library." "Multi-Arch: same"$'\n'"Recommends: libsodium23"
echo "libpigeon $major libpigeon$major (>= $version)" >"$lib/DEBIAN/shlibs"
echo "activate-noawait ldconfig" >"$lib/DEBIAN/triggers"
# The symbols file lists every exported function (lib/pigeon.map) with the version that
# introduced it, so that programs built later depend on the right minimum version.
printf 'Source: pigeon\n\nPackage: libpigeon%s\nArchitecture: any\n' "$major" \
  >"$work/src/debian/control"
(cd "$work/src" && dpkg-gensymbols -q -plibpigeon"$major" -v"$version" -P"$lib" \
  -O"$lib/DEBIAN/symbols")
sed -i '1a\* Build-Depends-Package: libpigeon-dev' "$lib/DEBIAN/symbols"

control "$dev" libpigeon-dev libdevel \
  "libpigeon$major (= $version), libssl-dev, libidn2-dev, libsqlite3-dev" \
  "email-sending toolkit - development files" \
  " libpigeon composes correct MIME messages and delivers them over SMTP with
 verified TLS, with a durable SQLite queue.
 .
 This package holds the headers, the pkg-config file and the static
 library." \
  "Multi-Arch: same"

control "$cmd" pigeon mail "$dep_cmd, systemd | systemd-standalone-sysusers | systemd-sysusers" \
  "email-sending command, sendmail and delivery daemon" \
  " pigeon sends mail from the command line and from scripts through an SMTP
 account (QQ, 163, Gmail, Outlook and other presets), explains the errors
 people actually hit, and queues what cannot be sent now for its delivery
 daemon. It can stand in for /usr/sbin/sendmail (an alternative; an MTA's own
 file is kept).
 .
 systemd units: pigeon-daemon.service and pigeon-serve.service (not enabled)."
units="pigeon-daemon.service pigeon-serve.service"
cat >"$cmd/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
    systemd-sysusers \${DPKG_ROOT:+--root="\$DPKG_ROOT"} pigeon.conf
    update-alternatives --install /usr/sbin/sendmail sendmail /usr/libexec/pigeon/sendmail 25 \\
        --slave /usr/lib/sendmail lib.sendmail /usr/libexec/pigeon/sendmail
fi
if [ "\$1" = configure ] || [ "\$1" = abort-upgrade ] || [ "\$1" = abort-deconfigure ] || [ "\$1" = abort-remove ]; then
    for unit in $units; do
        # Installed, not enabled: the daemon needs /etc/pigeon.conf first.
        if deb-systemd-helper debian-installed "\$unit"; then
            deb-systemd-helper unmask "\$unit" >/dev/null || true
            if deb-systemd-helper --quiet was-enabled "\$unit"; then
                deb-systemd-helper enable "\$unit" >/dev/null || true
            fi
        fi
        deb-systemd-helper update-state "\$unit" >/dev/null || true
    done
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        for unit in $units; do
            deb-systemd-invoke try-restart "\$unit" >/dev/null || true
        done
    fi
fi
EOF
cat >"$cmd/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = remove ] || [ "\$1" = deconfigure ]; then
    update-alternatives --remove sendmail /usr/libexec/pigeon/sendmail
fi
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then
    deb-systemd-invoke stop $units >/dev/null || true
fi
EOF
cat >"$cmd/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "\$1" = remove ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper mask $units >/dev/null || true
fi
if [ "\$1" = purge ] && command -v deb-systemd-helper >/dev/null; then
    deb-systemd-helper purge $units >/dev/null || true
    deb-systemd-helper unmask $units >/dev/null || true
fi
EOF
chmod 755 "$cmd/DEBIAN/postinst" "$cmd/DEBIAN/prerm" "$cmd/DEBIAN/postrm"

# ---- build ----
for p in "$lib" "$dev" "$cmd"; do
  (cd "$p" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0r md5sum >DEBIAN/md5sums)
  find "$p" -type d -exec chmod 755 {} +
  name=$(basename "$p")
  deb=$out/${name}_${version}_$arch.deb
  dpkg-deb --root-owner-group -Z"${MKDEB_COMPRESSION:-xz}" --build "$p" "$deb" >/dev/null
  echo "$deb"
done
