"""The lifecycle benchmark's baseline: the least a Python program launching QEMU must do.

    python bare_launcher.py ARGV_JSON MONITOR_SOCKET

Standard library only (what any Python launcher pays: the interpreter and asyncio): starts
QEMU with the argv in the JSON file (it contains ``-S``), waits for the QMP socket, negotiates,
sends ``cont`` and prints ``cont <epoch seconds>`` once QEMU has answered. Then, for each line
``powerdown`` on stdin, it sends ``system_powerdown``; when QEMU has exited it prints
``exited <seconds since the powerdown> <status>`` and ends.
"""

import asyncio
import json
import os
import sys
import time


async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  name: str) -> None:
    """Send QMP command ``name`` and wait for its reply (events are skipped)."""
    writer.write(json.dumps({"execute": name}).encode() + b"\n")
    await writer.drain()
    while True:
        reply = json.loads(await reader.readline())
        if "return" in reply or "error" in reply:
            return


async def main(argv: list[str], monitor: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        while not os.path.exists(monitor):  # noqa: ASYNC240 - a local stat
            if proc.returncode is not None:
                return 1
            await asyncio.sleep(0.001)
        while True:  # QEMU binds the socket a moment before it listens
            try:
                reader, writer = await asyncio.open_unix_connection(monitor)
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.001)
        await reader.readline()  # greeting
        await command(reader, writer, "qmp_capabilities")
        await command(reader, writer, "cont")
        print(f"cont {time.time():.6f}", flush=True)
        stdin = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        while (await stdin.readline()).strip() != b"powerdown":
            pass
        started = time.monotonic()
        await command(reader, writer, "system_powerdown")
        status = await proc.wait()
        print(f"exited {time.monotonic() - started:.6f} {status}", flush=True)
        writer.close()
        return 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


if __name__ == "__main__":
    with open(sys.argv[1]) as argv_file:
        qemu_argv = json.load(argv_file)
    sys.exit(asyncio.run(main(qemu_argv, sys.argv[2])))
