#!/usr/bin/env bash
# Demo: set up (scripts/setup.sh), run the tiny test VM through `vmrunner run`, wait for the
# guest's ready line on its serial console, then send SIGTERM and watch the graceful shutdown.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$(bash scripts/setup.sh)
GUEST=/var/tmp/vmrunner-guest
CONFIG=examples/demo-vm.yaml
"$PY" -m vmrunner.testing.guest build --out "$GUEST" >/dev/null
echo "== vmrunner run -c $CONFIG"
"$PY" -m vmrunner run -c "$CONFIG" &
RUNNER=$!
trap 'kill -KILL $RUNNER 2>/dev/null || true' EXIT
# attach to the guest's serial console (runtimeDir/console.sock) and wait for its ready line
"$PY" - <<'PYEOF'
import asyncio
from pathlib import Path
from vmrunner.proc.sockets import wait_for_socket
from vmrunner.testing.console import GuestConsole
from vmrunner.testing.runnerproc import connect_listening

async def main() -> None:
    socket = Path("/tmp/vmrunner-demo/run/console.sock")
    socket.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.wait_for(wait_for_socket(socket), 30)
    console = GuestConsole(*await connect_listening(socket))
    print(f"== guest console: TG-READY {await console.wait_ready(60)}", flush=True)
    await console.close()

asyncio.run(main())
PYEOF
echo "== sending SIGTERM to the runner (pid $RUNNER): graceful shutdown"
kill -TERM "$RUNNER"
set +e
wait "$RUNNER"
CODE=$?
set -e
trap - EXIT
echo "== vmrunner exited with $CODE (0: the guest powered itself off)"
exit "$CODE"
