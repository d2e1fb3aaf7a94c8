#!/usr/bin/env bash
# The image's runtime stage installs scripts/install-deps.sh --runtime and nothing else: every
# shared library the binary needs (readelf's NEEDED) must come from a package on that list, or
# from the base image's essential packages (libc6, libgcc-s1). A library that arrives only as
# a dependency of another package (e.g. snappy through librocksdb) would break the image the
# day that package is dropped.
# Usage: runtime_packages_test.sh PQA_SCORER_BINARY SOURCE_DIR
set -euo pipefail
binary=$1
source_dir=$2
eval "$(sed -n '/^runtime_packages=(/,/^)/p' "$source_dir/scripts/install-deps.sh")"
[ "${#runtime_packages[@]}" -gt 5 ] || { echo "no runtime_packages list found" >&2; exit 1; }
essential=(libc6 libgcc-s1)
failures=0
checked=0
while read -r library; do
  path=$(ldconfig -p | awk -v lib="$library" '$1 == lib && !found { found = $NF } END { print found }')
  [ -n "$path" ] || { echo "FAIL: $library not found by ldconfig" >&2; failures=$((failures + 1)); continue; }
  # dpkg knows a file under the path its package installed it at: /lib or /usr/lib (usrmerge).
  real=$(readlink -f "$path")
  package=""
  for candidate in "$real" "${real#/usr}" "/usr$real" "$path"; do
    package=$( (dpkg -S "$candidate" 2>/dev/null || true) | head -n 1 | cut -d: -f1)
    [ -z "$package" ] || break
  done
  [ -n "$package" ] || { echo "FAIL: no package owns $path ($library)" >&2; failures=$((failures + 1)); continue; }
  checked=$((checked + 1))
  if [[ " ${runtime_packages[*]} ${essential[*]} " != *" $package "* ]]; then
    echo "FAIL: $library comes from $package, which is not in install-deps.sh's runtime_packages" >&2
    failures=$((failures + 1))
  fi
done < <(readelf -d "$binary" | awk '/NEEDED/ { gsub(/[][]/, "", $5); print $5 }')
[ "$checked" -gt 5 ] || { echo "FAIL: only $checked libraries checked" >&2; exit 1; }
echo "$checked shared libraries, each from a runtime package; $failures failures"
[ "$failures" -eq 0 ]
