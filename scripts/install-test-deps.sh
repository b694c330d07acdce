#!/usr/bin/env bash
# Installs every real peer the test suite talks to, into the project tree:
#   tests/interop/node_modules  Node 22 (npm's node@22), the MCP conformance suite,
#                               the TypeScript SDK (1.x) and v2 client, @modelcontextprotocol/server-everything,
#                               the agent CLIs runs execute (@anthropic-ai/claude-code, @openai/codex)
#   tests/interop/.venv         the Python SDK (PyPI mcp), mcp-server-time, prometheus_client, kubernetes-validate
#                               (the offline Kubernetes schemas for deploy/kubernetes and the Jobs backend)
#                               and opentelemetry-proto (the OTLP schema the MOCK trace collector decodes with)
#   bwrap                       bubblewrap, the local run sandbox (Debian package, only when missing)
#   chromium, chromedriver      Debian chromium and chromium-driver, for the web page's browser test
#                               (only when missing)
# Idempotent: a second run only checks. Nothing else is installed outside the tree.
set -euo pipefail

if ! command -v bwrap >/dev/null 2>&1; then
  echo "install-test-deps: bubblewrap (Debian package, for the run sandbox)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y bubblewrap >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y bubblewrap >/dev/null; }
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "install-test-deps: chromium and chromium-driver (Debian packages, for the web page's browser test)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y chromium chromium-driver >/dev/null || { $sudo apt-get update >/dev/null && $sudo apt-get install -y chromium chromium-driver >/dev/null; }
fi
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/interop"
cd "$dir"

if [ ! -x node_modules/.bin/node ] || [ package.json -nt node_modules/.stamp ]; then
  echo "install-test-deps: npm packages (node@22, conformance, sdk, server-everything, claude-code, codex)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error
  else npm install --no-audit --no-fund --loglevel=error; fi
  touch node_modules/.stamp
fi
node_ver=$(node_modules/.bin/node --version)
case "$node_ver" in v22.*) ;; *) echo "install-test-deps: expected Node 22, got $node_ver" >&2; exit 1;; esac

if [ ! -x .venv/bin/python ] || [ requirements.txt -nt .venv/.stamp ]; then
  echo "install-test-deps: Python venv (mcp, mcp-server-time, prometheus_client, kubernetes-validate, opentelemetry-proto)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  touch .venv/.stamp
fi
echo "install-test-deps: ok (node $node_ver, $(bwrap --version), $(chromedriver --version | cut -d' ' -f1-2), $(.venv/bin/python -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'))"
