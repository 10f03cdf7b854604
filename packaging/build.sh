#!/usr/bin/env bash
# Builds the Debian and RPM packages of pam_otp_email into target/packages/.
#
#   packaging/build.sh [--no-build] [--out DIR]
#
#   --no-build  package the binaries already in target/release instead of running
#               `cargo build --release --workspace --bins --lib` first (CI builds them itself)
#   --out DIR   where the packages go (default: target/packages)
#
# Both packages hold the same files, staged here from the release binaries and packaging/:
# the .deb is made with `dpkg-deb --root-owner-group`, the .rpm with rpmbuild from
# packaging/rpm/pam-otp-email.spec.in, which copies the staged tree. Nothing is downloaded
# besides the Debian packages it needs (dpkg-dev, rpm, binutils), installed with apt-get when
# missing (as root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/target/packages"
build=1

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --out)
            [ $# -ge 2 ] || { echo "build.sh: --out needs a directory" >&2; exit 2; }
            out=$2
            shift
            ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build.sh: $*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------------------
need=()
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v dpkg-architecture >/dev/null || need+=(dpkg-dev)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v strip >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing tools; run as root or: sudo apt-get install ${need[*]}"
    echo "build.sh: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- binaries -----------------------------------------------------------------------------
cd "$root"
if [ "$build" -eq 1 ]; then
    cargo build --release --workspace --bins --lib
fi
release="$root/target/release"
for f in otpd otpctl libpam_otp_email.so; do
    [ -f "$release/$f" ] || die "$release/$f is missing: build it with cargo build --release --workspace --bins --lib"
done

# --- names and versions -------------------------------------------------------------------
package=pam-otp-email
version=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || die "no version in [workspace.package] of Cargo.toml"
revision=1
deb_version="$version-$revision"
changelog_version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$here/debian/changelog")
[ "$changelog_version" = "$deb_version" ] ||
    die "packaging/debian/changelog starts with $changelog_version, expected $deb_version: add an entry (and one to the spec's %changelog)"
deb_arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
rpm_arch=$(uname -m)
case "$rpm_arch" in
    x86_64|aarch64|ppc64le|s390x|riscv64) rpm_libdir=/usr/lib64 ;;
    *) rpm_libdir=/usr/lib ;;
esac
# Reproducible timestamps: the date of the latest changelog entry.
SOURCE_DATE_EPOCH=$(date -d "$(sed -n 's/^ -- .*>  //p' "$here/debian/changelog" | head -n1)" +%s)
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/otp-packages.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022

# --- staging ------------------------------------------------------------------------------
# stage DIR MODULE_DIR MODULE_MODE ZSH_DIR: the files both packages share.
stage() {
    local dest=$1 module_dir=$2 module_mode=$3 zsh_dir=$4
    local doc="$dest/usr/share/doc/$package"
    install -D -m 0755 "$release/otpd" "$dest/usr/sbin/otpd"
    install -D -m 0755 "$release/otpctl" "$dest/usr/bin/otpctl"
    install -D -m "$module_mode" "$release/libpam_otp_email.so" "$dest$module_dir/pam_otp_email.so"
    # As dh_strip does: executables lose their symbol tables, the module its local symbols.
    strip --remove-section=.comment --remove-section=.note "$dest/usr/sbin/otpd" "$dest/usr/bin/otpctl"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$dest$module_dir/pam_otp_email.so"

    install -D -m 0640 "$here/otpd.toml" "$dest/etc/otpd/otpd.toml"
    # fail2ban's filter and jail (disabled); harmless where fail2ban is not installed.
    install -D -m 0644 "$here/fail2ban/filter.d/otpd.conf" "$dest/etc/fail2ban/filter.d/otpd.conf"
    install -D -m 0644 "$here/fail2ban/jail.d/otpd.conf" "$dest/etc/fail2ban/jail.d/otpd.conf"
    install -D -m 0644 "$here/systemd/otpd.service" "$dest/usr/lib/systemd/system/otpd.service"
    install -D -m 0644 "$here/systemd/otpd.sysusers" "$dest/usr/lib/sysusers.d/otpd.conf"
    install -D -m 0644 "$here/systemd/otpd.tmpfiles" "$dest/usr/lib/tmpfiles.d/otpd.conf"

    # Man pages and completions: written by hand in man/ and completions/, and generated from
    # otpctl's command line definition in generated/ (`otpctl generate-docs`), which win.
    local file name section
    for file in "$here"/man/*.[1-8] "$here"/generated/*.[1-8]; do
        [ -f "$file" ] || continue
        name=$(basename "$file")
        section=${name##*.}
        install -D -m 0644 "$file" "$dest/usr/share/man/man$section/$name"
        gzip -9nf "$dest/usr/share/man/man$section/$name"
    done
    for file in "$here"/completions/* "$here"/generated/*; do
        [ -f "$file" ] || continue
        name=$(basename "$file")
        case "$name" in
            *.bash) install -D -m 0644 "$file" "$dest/usr/share/bash-completion/completions/${name%.bash}" ;;
            _*) install -D -m 0644 "$file" "$dest$zsh_dir/$name" ;;
            *.fish) install -D -m 0644 "$file" "$dest/usr/share/fish/vendor_completions.d/$name" ;;
        esac
    done

    install -D -m 0644 "$here/doc/README.md" "$doc/README.md"
    (cd "$here/doc" && find examples -type f) | while read -r f; do
        install -D -m 0644 "$here/doc/$f" "$doc/$f"
    done
}

# inline FILE: the file with its @PAM_REFERENCES@, @STOP_OTPD@ and @SYSUSERS@ placeholders
# filled in.
inline() {
    awk -v refs="$here/scripts/pam-references.sh" -v stop="$here/scripts/stop-otpd.sh" \
        -v sysusers="$here/systemd/otpd.sysusers" '
        function cat(file,   line) { while ((getline line < file) > 0) print line; close(file) }
        /^#?@PAM_REFERENCES@$/ { cat(refs); next }
        /^#?@STOP_OTPD@$/ { cat(stop); next }
        /^@SYSUSERS@$/ { cat(sysusers); next }
        { print }' "$1"
}

# --- .deb ---------------------------------------------------------------------------------
deb="$work/deb"
stage "$deb" "/usr/lib/$multiarch/security" 0644 /usr/share/zsh/vendor-completions
install -D -m 0644 "$here/pam-configs/otp-email" "$deb/usr/share/pam-configs/otp-email"
install -D -m 0644 "$here/doc/copyright" "$deb/usr/share/doc/$package/copyright"
install -D -m 0644 "$here/debian/changelog" "$deb/usr/share/doc/$package/changelog.Debian"
gzip -9n "$deb/usr/share/doc/$package/changelog.Debian"
if [ -f "$here/debian/lintian-overrides" ]; then
    install -D -m 0644 "$here/debian/lintian-overrides" "$deb/usr/share/lintian/overrides/$package"
fi

install -d -m 0755 "$deb/DEBIAN"
for script in postinst prerm postrm; do
    inline "$here/debian/$script" > "$deb/DEBIAN/$script"
    chmod 0755 "$deb/DEBIAN/$script"
done
install -m 0644 "$here/debian/conffiles" "$deb/DEBIAN/conffiles"

# Shared library dependencies, as dh_shlibdeps computes them (it wants a debian/control).
mkdir -p "$work/shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" > "$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$deb/usr/sbin/otpd" -e"$deb/usr/bin/otpctl" \
    -e"$deb/usr/lib/$multiarch/security/pam_otp_email.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"
installed_size=$(du -sk --exclude=DEBIAN "$deb" | cut -f1)
sed -e "s/@DEB_VERSION@/$deb_version/" -e "s/@DEB_ARCH@/$deb_arch/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s/@SHLIBS_DEPENDS@/$shlibs/" \
    "$here/debian/control.in" > "$deb/DEBIAN/control"
(cd "$deb" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) > "$deb/DEBIAN/md5sums"
chmod 0644 "$deb/DEBIAN/md5sums"
find "$deb" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb_file="$out/${package}_${deb_version}_${deb_arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$deb" "$deb_file" >/dev/null

# --- .rpm ---------------------------------------------------------------------------------
rpmstage="$work/rpmstage"
stage "$rpmstage" "$rpm_libdir/security" 0755 /usr/share/zsh/site-functions
install -D -m 0644 "$here/doc/LICENSE" "$rpmstage/usr/share/licenses/$package/LICENSE"
install -d -m 0700 "$rpmstage/var/lib/otpd"
inline "$here/rpm/pam-otp-email.spec.in" | sed -e "s/@VERSION@/$version/" \
    -e "s/@RPM_RELEASE@/$revision/" -e "s|@RPM_MODULE_DIR@|$rpm_libdir/security|" \
    > "$work/$package.spec"
rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "stagedir $rpmstage" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    --target "$rpm_arch" \
    "$work/$package.spec" >/dev/null
rpm_file="$out/$package-$version-$revision.$rpm_arch.rpm"
cp "$work/rpmbuild/RPMS/$rpm_arch/$package-$version-$revision.$rpm_arch.rpm" "$rpm_file"

echo "$deb_file"
echo "$rpm_file"
