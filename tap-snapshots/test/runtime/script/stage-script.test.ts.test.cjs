/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`test/runtime/script/stage-script.test.ts > TAP > get_sources: the token-bearing URL is never echoed; the script shape is stable > get_sources script 1`] = `
trap 'exit 1' TERM
if [ -n "\${BASH_VERSION-}" ] || (set -o pipefail) 2>/dev/null; then set -o pipefail; fi
set -o errexit
set +o noclobber
eval '[ -d /builds/2/group/project.tmp ] || mkdir -p /builds/2/group/project.tmp
export FF_TIMESTAMPS=true
export CI_BUILDS_DIR=/builds
export CI_PROJECT_DIR=/builds/2/group/project
export CI_CONCURRENT_ID=2
export CI_CONCURRENT_PROJECT_ID=2
export CI_SERVER=yes
export CI_JOB_TIMEOUT=3600
export CI_JOB_ID=1001
export CI_PROJECT_PATH=group/project
export CI_JOB_TOKEN=glcbt-64_secretjobtoken
export GIT_STRATEGY=clone
export CI_SHARED_ENVIRONMENT=true
export CI_RUNNER_VERSION=<version>
export CI_RUNNER_REVISION=unknown
export CI_RUNNER_EXECUTABLE_ARCH=<arch>
export RUNNER_TEMP_PROJECT_DIR=/builds/2/group/project.tmp
export CI_JOB_STATUS=running
export GIT_TERMINAL_PROMPT=0
export GCM_INTERACTIVE=Never
export GITLAB_ENV=/builds/2/group/project.tmp/gitlab_runner_env
: > "$GITLAB_ENV"
while read -r _runner_env_line || [ -n "$_runner_env_line" ]; do export "$_runner_env_line"; done < "$GITLAB_ENV"
export GIT_LFS_SKIP_SMUDGE=1
rm -f /builds/2/group/project/.git/index.lock /builds/2/group/project/.git/shallow.lock /builds/2/group/project/.git/HEAD.lock /builds/2/group/project/.git/hooks/post-checkout /builds/2/group/project/.git/config.lock
if [ -d /builds/2/group/project/.git/refs ]; then find /builds/2/group/project/.git/refs -name '\\''*.lock'\\'' -type f -exec rm -f {} +; fi
rm -rf /builds/2/group/project
printf '\\''%s\\n'\\'' '\\''[32;1mFetching changes with git depth set to 20...[0;m'\\''
rm -rf /builds/2/group/project.tmp/git-template
mkdir -p /builds/2/group/project.tmp/git-template
git -c init.defaultBranch=main init /builds/2/group/project --template /builds/2/group/project.tmp/git-template --quiet
cd /builds/2/group/project
if git remote add origin https://gitlab-ci-token:glcbt-64_secretjobtoken@gitlab.example/group/project.git >/dev/null 2>&1; then
printf '\\''%s\\n'\\'' '\\''[32;1mCreated fresh repository.[0;m'\\''
else git remote set-url origin https://gitlab-ci-token:glcbt-64_secretjobtoken@gitlab.example/group/project.git; fi
: > /builds/2/group/project.tmp/git-ext.config
git config --file /builds/2/group/project.tmp/git-ext.config --add url.https://gitlab-ci-token:glcbt-64_secretjobtoken@gitlab.example.insteadOf https://gitlab.example
if [ -n "\${CI_SERVER_TLS_CA_FILE:-}" ]; then git config --file /builds/2/group/project.tmp/git-ext.config http.https://gitlab.example.sslCAInfo "$CI_SERVER_TLS_CA_FILE"; fi
git config --replace-all include.path /builds/2/group/project.tmp/git-ext.config '\\''git-ext.config$'\\''
git -c http.userAgent=runfleet fetch origin --no-recurse-submodules +refs/heads/main:refs/remotes/origin/main --depth 20 --prune --quiet
printf '\\''%s\\n'\\'' '\\''[32;1mChecking out 01234567 as detached HEAD (ref is main)...[0;m'\\''
git -c submodule.recurse=false checkout -f -q 0123456789abcdef0123456789abcdef01234567
git clean -ffdx
if git lfs version >/dev/null 2>&1; then git lfs pull; fi
printf '\\''%s\\n'\\'' '\\''[32;1mSkipping Git submodules setup[0;m'\\''
' </dev/null
exit 0

`
