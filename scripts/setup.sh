#!/usr/bin/env bash
# npm run setup: a fresh machine gets a2 with its oneDNN accelerator. On Debian/Ubuntu it installs
# what the accelerator's build needs (libdnnl-dev, a C++ compiler, make, python3 for node-gyp)
# with apt-get — directly as root, through sudo otherwise, and when neither is possible it prints
# the exact command and goes on — then `npm ci` (whose postinstall builds the addon), then says
# whether the accelerator loads. Elsewhere it says what is missing; a2 works without it.
set -euo pipefail
cd "$(dirname "$0")/.."

header=/usr/include/oneapi/dnnl/dnnl.hpp
slower='without it CNN training runs on wasm alone, 12-25x slower (q5 net, 2 cores: ~20 images/s instead of ~250 in fp32 and ~460 in bf16)'

needed=()
[ -f "$header" ] || needed+=(libdnnl-dev)
command -v g++ >/dev/null || needed+=(g++)
command -v make >/dev/null || needed+=(make)
command -v python3 >/dev/null || needed+=(python3)

if [ ${#needed[@]} -eq 0 ]; then
  echo "setup: the accelerator's build needs are present (libdnnl-dev, g++, make, python3)"
elif command -v apt-get >/dev/null; then
  command="apt-get update && apt-get install -y ${needed[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    run=(bash -c "$command")
  elif command -v sudo >/dev/null; then
    echo "setup: installing ${needed[*]} with sudo (it may ask for your password)"
    run=(sudo env DEBIAN_FRONTEND=noninteractive bash -c "$command")
  else
    run=()
    echo "setup: not root and no sudo, so ${needed[*]} cannot be installed from here; $slower."
    echo "setup: as root, run:  $command   then:  npm run build:native"
  fi
  if [ ${#run[@]} -gt 0 ] && ! DEBIAN_FRONTEND=noninteractive "${run[@]}"; then
    echo "setup: installing ${needed[*]} failed; $slower. To retry:  $command && npm run build:native"
  fi
else
  echo "setup: no apt-get here, so a2 cannot install what the accelerator needs (${needed[*]}); $slower."
  echo "setup: the accelerator builds against oneDNN's headers at $header and -ldnnl (Debian/Ubuntu: libdnnl-dev);"
  echo "setup: with those in place, run  npm run build:native.  a2 itself works either way."
fi

npm ci --no-audit --no-fund

# Says in one line whether training will use oneDNN, with the notice a2 itself would print.
node --import tsx -e "
  const { loadOneDnn } = await import('./src/tensor/onednn-kernels.ts');
  const { addon, notice } = loadOneDnn();
  console.log(addon ? 'setup: the oneDNN accelerator loads (oneDNN ' + addon.version + '): a2 trains at full speed' : 'setup: no accelerator: ' + notice);
"
