#!/usr/bin/env bash
# (A copy of the project's ../shared/lavapipe/setup.sh, so CI can fetch the drivers on a clean clone.)
# Puts a newer Mesa lavapipe (CPU Vulkan driver) into a folder, without touching the system, and writes
# an `env.sh` there to source before running a program on it.
#   .ci/lavapipe.sh 25 DIR   Mesa 25.0 from bookworm-backports: SHADER_F16 + SUBGROUP (stable for Debian 12).
#   .ci/lavapipe.sh 26 DIR   Mesa 26.x from Debian sid: also VK_KHR_cooperative_matrix (8x8x8 f16 -> f16/f32).
#                     sid needs its own glibc, so programs run through sid's dynamic loader: `DIR/run PROG ARGS`.
# Needs root (apt-get download, no install) and the Debian package registry. About 15 MB (25) / 70 MB (26) of .debs.
set -euo pipefail
ver=${1:?usage: setup.sh 25|26 DIR}; dir=$(mkdir -p "${2:?usage: setup.sh 25|26 DIR}" && cd "$2" && pwd)
rm -rf "$dir/debs" "$dir/root"   # no mix of versions from an earlier fetch
apt_dir=$dir/.apt; mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dir/debs"
# The Debian mirror this machine's apt already uses.
mirror=$(grep -h -m1 -oP '^URIs:\s*\K\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(grep -h -m1 -oP '^deb\s+(\[[^]]*\]\s+)?\K\S+' /etc/apt/sources.list 2>/dev/null | head -1)
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
case $ver in
  25) echo "deb $mirror bookworm-backports main" >"$apt_dir/sources.list"
      pkgs="mesa-vulkan-drivers libdrm2 libdrm-amdgpu1" ;;
  26) echo "deb $mirror sid main" >"$apt_dir/sources.list"
      llvm=libllvm22
      pkgs="mesa-vulkan-drivers libvulkan1 libc6 $llvm libstdc++6 libgcc-s1 libz3-4 libxml2-16 libedit2 libffi8
            libdisplay-info3 libdrm2 libexpat1 libwayland-client0 libx11-xcb1 libxshmfence1 libxcb1 libxcb-dri3-0
            libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libzstd1 zlib1g" ;;
  *) echo "usage: setup.sh 25|26 DIR" >&2; exit 2 ;;
esac
o=(-o Acquire::Retries=0 -o Acquire::http::Timeout=20 -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
apt-get "${o[@]}" update -qq
if [ "$ver" = 26 ]; then  # the LLVM that sid's Mesa links against
  llvm=$(apt-cache "${o[@]}" show mesa-vulkan-drivers | grep -m1 '^Depends' | grep -o 'libllvm[0-9]*' | head -1)
  pkgs=$(echo "$pkgs" | sed "s/libllvm22/$llvm/")
fi
( cd "$dir/debs" && for p in $pkgs; do
    v=$(apt-cache "${o[@]}" policy "$p" | awk '/Candidate/{print $2}')
    apt-get "${o[@]}" download "$p=$v" 2>&1 | grep -v -e unsandboxed -e '^Get:' || true
  done )
for f in "$dir"/debs/*.deb; do dpkg -x "$f" "$dir/root"; done
lib=$dir/root/usr/lib/x86_64-linux-gnu
icd=$(ls "$dir"/root/usr/share/vulkan/icd.d/lvp_icd*.json | head -1)
sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" "$icd" >"$dir/lvp_icd.json"
if [ "$ver" = 25 ]; then
  cat >"$dir/env.sh" <<ENV
export VK_DRIVER_FILES=$dir/lvp_icd.json
export LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export WGPU_BACKEND=vulkan
ENV
  cat >"$dir/run" <<RUN
#!/usr/bin/env bash
source "$dir/env.sh"; exec "\$@"
RUN
else
  cat >"$dir/env.sh" <<ENV
export VK_DRIVER_FILES=$dir/lvp_icd.json
export VK_LOADER_LAYERS_DISABLE='~implicit~'
export WGPU_BACKEND=vulkan
ENV
  cat >"$dir/run" <<RUN
#!/usr/bin/env bash
# Runs a program on sid's loader and libraries (sid's Mesa needs a newer glibc than Debian 12 has).
source "$dir/env.sh"; exec "$lib/ld-linux-x86-64.so.2" --library-path "$lib" "\$@"
RUN
fi
chmod +x "$dir/run"
echo "lavapipe $ver ready in $dir: run programs on it with \`$dir/run PROGRAM ARGS\`"
